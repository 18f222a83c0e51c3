from django.contrib import admin

from triggers.models import Schedule, WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["lineage", "created_at"]
    search_fields = ["=lineage"]
    readonly_fields = ["token", "created_at"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["endpoint", "kind", "key", "received_at", "run"]
    list_filter = ["kind", "received_at"]
    search_fields = ["key", "=run__id"]
    list_select_related = ["endpoint"]
    raw_id_fields = ["endpoint", "run"]


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ["workflow", "cron", "timezone", "enabled", "catch_up", "next_fire_at"]
    list_filter = ["enabled", "catch_up", "timezone"]
    search_fields = ["workflow__name", "cron", "=lineage"]
    list_select_related = ["workflow"]
    raw_id_fields = ["workflow", "last_run"]
    readonly_fields = ["lineage", "last_fired_at", "created_at", "updated_at"]
