from django.contrib import admin

from runs.models import Event, Run, RunEvent, StepRun


class StepRunInline(admin.TabularInline):
    model = StepRun
    extra = 0
    fields = ["step_id", "step_type", "attempt", "status", "error", "started_at", "completed_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "workflow", "status", "trigger_type", "created_at", "completed_at"]
    list_filter = ["status", "trigger_type", "created_at"]
    search_fields = ["=id", "workflow__name", "idempotency_key"]
    list_select_related = ["workflow"]
    readonly_fields = [
        "id",
        "created_at",
        "updated_at",
        "started_at",
        "completed_at",
        "lease_owner",
        "lease_expires_at",
        "fence",
        "last_seq",
        "parent_run",
        "parent_step_id",
    ]
    inlines = [StepRunInline]
    date_hierarchy = "created_at"

    def delete_model(self, request, obj):
        Run.objects.filter(pk=obj.pk).purge()

    def delete_queryset(self, request, queryset):
        queryset.purge()


@admin.register(StepRun)
class StepRunAdmin(admin.ModelAdmin):
    list_display = ["step_id", "run", "step_type", "attempt", "status", "started_at"]
    list_filter = ["status", "step_type"]
    search_fields = ["step_id", "=run__id"]
    list_select_related = ["run"]


@admin.register(RunEvent)
class RunEventAdmin(admin.ModelAdmin):
    list_display = ["run", "seq", "event_type", "step_id", "created_at"]
    list_filter = ["event_type", "created_at"]
    search_fields = ["=run__id", "step_id"]
    list_select_related = ["run"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Events delivered to POST /api/v1/events: a record of what they resumed and started."""

    list_display = ["name", "event_id", "received_at", "created_by"]
    list_filter = ["name", "received_at"]
    search_fields = ["name", "=event_id"]
    readonly_fields = [f.name for f in Event._meta.fields]

    def has_add_permission(self, request):
        return False
