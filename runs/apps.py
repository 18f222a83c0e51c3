from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        import engine.handlers  # noqa: F401  (registers the built-in step types)
        from engine.functions import load_configured_functions

        load_configured_functions()  # a wrong FLOWMATRX_FUNCTIONS path fails at start
