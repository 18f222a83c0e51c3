from django.contrib import admin

from accounts.forms import AdminLoginForm
from accounts.models import ApiKey, IdempotencyRecord
from accounts.roles import ADMINISTER, may

# The Django admin site belongs to the admin role (accounts.roles), and its sign-in form is
# rate limited like /accounts/login/.
admin.site.login_form = AdminLoginForm
admin.site.has_permission = lambda request: may(request.user, ADMINISTER)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["display_prefix", "name", "user", "scopes", "created_at", "last_used_at"]
    list_filter = ["revoked_at", "created_at"]
    search_fields = ["prefix", "name", "user__username"]
    list_select_related = ["user"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are made with `manage.py create_api_key`, which shows the key once

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            key.revoke()


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ["scope", "key", "user", "response_status", "created_at"]
    search_fields = ["key", "user__username"]
    list_select_related = ["user"]
    readonly_fields = [f.name for f in IdempotencyRecord._meta.fields]
