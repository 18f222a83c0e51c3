from django.urls import path

from workflows import builder_page, builder_views, trigger_views, views

app_name = "workflows"
urlpatterns = [
    path("", views.workflow_list, name="list"),
    path("new", builder_page.new_workflow, name="new"),
    path("<uuid:workflow_id>/", views.workflow_detail, name="detail"),
    path("<uuid:workflow_id>/run", views.run_workflow, name="run"),
    path("<uuid:workflow_id>/builder", builder_page.builder, name="builder"),
    path(
        "<uuid:workflow_id>/schedules/<int:schedule_id>/toggle",
        views.toggle_schedule,
        name="toggle_schedule",
    ),
    path("<uuid:workflow_id>/builder/node-form", builder_views.node_form, name="node_form"),
    path(
        "<uuid:workflow_id>/builder/node-form/save",
        builder_views.node_form_save,
        name="node_form_save",
    ),
    path("<uuid:workflow_id>/builder/preview", builder_views.preview, name="preview"),
    path("<uuid:workflow_id>/triggers/form", trigger_views.trigger_form_view, name="trigger_form"),
    path("<uuid:workflow_id>/triggers/save", trigger_views.save_trigger_view, name="save_trigger"),
    path(
        "<uuid:workflow_id>/triggers/remove",
        trigger_views.remove_trigger_view,
        name="remove_trigger",
    ),
    path(
        "<uuid:workflow_id>/triggers/preview",
        trigger_views.schedule_preview_view,
        name="schedule_preview",
    ),
    path(
        "<uuid:workflow_id>/flow-control/save",
        trigger_views.save_flow_control_view,
        name="save_flow_control",
    ),
]
