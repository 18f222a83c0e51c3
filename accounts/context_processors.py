from accounts.roles import ADMINISTER, MANAGE, RUN, may, role_of


def role(request):
    """The signed-in user's role and what it allows, for templates (`user_role`, `can`)."""
    user = getattr(request, "user", None)
    return {
        "user_role": role_of(user),
        "can": {action: may(user, action) for action in (RUN, MANAGE, ADMINISTER)},
    }
