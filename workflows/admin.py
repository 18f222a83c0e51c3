from django.contrib import admin

from workflows.models import Workflow


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "status", "created_by", "updated_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["name", "description", "=id", "=lineage"]
    readonly_fields = ["id", "lineage", "created_at", "updated_at", "published_at"]
    date_hierarchy = "created_at"
