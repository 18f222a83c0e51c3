"""`POST /hooks/<token>`: the webhook trigger (see `triggers.webhooks`)."""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.access import public
from triggers import webhooks


@public("the trigger's token and secret are the credential (SPEC §7)")
@csrf_exempt
def webhook(request, token: str):
    """Start a run of the workflow behind `token`: 202 ``{"run_id"}`` (200 with the first
    run's id for an idempotency key seen before); 4xx ``{"errors": [...]}`` when refused."""
    if request.method != "POST":
        response = JsonResponse(
            {"errors": [{"loc": ["method"], "msg": "webhooks take POST requests"}]}, status=405
        )
        response["Allow"] = "POST"
        return response
    try:
        accepted = webhooks.handle(token, request)
    except webhooks.WebhookError as exc:
        return JsonResponse(exc.as_dict(), status=exc.status)
    return JsonResponse({"run_id": accepted.run_id}, status=202 if accepted.created else 200)
