"""A small Django project shaped like the original Parkmate backend (a custom user model with a
``role`` field, Django REST framework's token authentication), for the integration tests.

The ``PARKMATE_*`` settings are deliberately absent: each test sets them (pytest-django's
``settings`` fixture) to the server it started.
"""

from __future__ import annotations

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "rest_framework.authtoken",
    "parking",
    "parkmate_notify.django",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "demo_site.urls"
AUTH_USER_MODEL = "parking.AuthUser"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
}
LOGGING_CONFIG = None
# Tests sign users in, not attackers: the fast hasher keeps each test from spending a second on PBKDF2.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
