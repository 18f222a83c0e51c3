from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("password/", views.password_change, name="password"),
    path("users/", views.user_list, name="users"),
    path("users/new", views.user_create, name="user_create"),
    path("users/<int:user_id>/role", views.user_role, name="user_role"),
    path("users/<int:user_id>/active", views.user_active, name="user_active"),
    path("users/<int:user_id>/password", views.user_password, name="user_password"),
    path("keys/", views.key_list, name="keys"),
    path("keys/new", views.key_create, name="key_create"),
    path("keys/<int:key_id>/revoke", views.key_revoke, name="key_revoke"),
]
