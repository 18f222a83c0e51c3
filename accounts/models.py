"""Profiles (a user's role), API keys and idempotency records.

An API key is `fmx_<prefix>_<secret>`. The prefix (10 hex characters) is public and
indexed, so a key is found with one lookup; the secret carries 256 bits of randomness,
so storing only its SHA-256 is enough (no slow hash needed: nothing to brute-force).
The plaintext is shown once, when the key is made.
"""

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.roles import Role

KEY_PREFIX = "fmx_"
SCOPES = ("read", "run", "manage")
"""read: every GET; run: start, cancel, retry and resume runs, send events; manage: create,
edit, publish, archive and delete workflows."""
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""`last_used_at` is written at most this often per key (one UPDATE, not one per request)."""

_PREFIX_RE = re.compile(r"[0-9a-f]{10}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{32,64}")


def default_scopes() -> list[str]:
    return list(SCOPES)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def split_key(plaintext: object) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None (checked before any query)."""
    if not isinstance(plaintext, str) or not plaintext.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = plaintext[len(KEY_PREFIX) :].partition("_")
    if not sep or not _PREFIX_RE.fullmatch(prefix) or not _SECRET_RE.fullmatch(secret):
        return None
    return prefix, secret


class Profile(models.Model):
    """What Flow Matrx keeps about a user beyond Django's User: the role (accounts.roles)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"


class ApiKeyQuerySet(models.QuerySet):
    def active(self) -> "ApiKeyQuerySet":
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def matching(self, key_or_prefix: str) -> "ApiKeyQuerySet":
        """The key given in full, as `fmx_<prefix>` or as the bare prefix."""
        text = key_or_prefix.strip()
        parts = split_key(text)
        if parts is not None:
            return self.filter(prefix=parts[0], key_hash=hash_key(text))
        if text.startswith(KEY_PREFIX):
            text = text[len(KEY_PREFIX) :].rstrip("_")
        if not _PREFIX_RE.fullmatch(text):
            return self.none()
        return self.filter(prefix=text)

    def visible_to(self, user) -> "ApiKeyQuerySet":
        """Every key for an admin, a user's own keys for anyone else."""
        from accounts.roles import ADMINISTER, may

        return self if may(user, ADMINISTER) else self.filter(user=user)


class ApiKey(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True, help_text="The public part of the key.")
    key_hash = models.CharField(max_length=64, help_text="SHA-256 of the whole key.")
    scopes = models.JSONField(default=default_scopes)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.display_prefix}… ({self.name or 'unnamed'}, {self.user})"

    @property
    def display_prefix(self) -> str:
        return f"{KEY_PREFIX}{self.prefix}"

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()

    def has_scope(self, scope: str) -> bool:
        return isinstance(self.scopes, list) and scope in self.scopes

    @classmethod
    def create(cls, user, name: str = "", scopes=SCOPES, expires_at=None) -> tuple["ApiKey", str]:
        """A new key for `user`; returns the row and the plaintext (shown once, never stored)."""
        scopes = list(dict.fromkeys(scopes))
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            raise ValueError(f"scopes must be some of {', '.join(SCOPES)}, not {unknown or '[]'}")
        for _ in range(5):
            prefix = secrets.token_hex(5)
            plaintext = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
            try:
                with transaction.atomic():
                    key = cls.objects.create(
                        user=user,
                        name=name,
                        prefix=prefix,
                        key_hash=hash_key(plaintext),
                        scopes=scopes,
                        expires_at=expires_at,
                    )
            except IntegrityError:  # a prefix collision (1 in 10^12): draw again
                continue
            return key, plaintext
        raise RuntimeError("could not draw an unused key prefix")

    @classmethod
    def authenticate(cls, plaintext: str) -> "ApiKey | None":
        """The active key of an active user that `plaintext` is, else None."""
        parts = split_key(plaintext)
        if parts is None:
            return None
        key = cls.objects.select_related("user").filter(prefix=parts[0]).first()
        if key is None or not hmac.compare_digest(key.key_hash, hash_key(plaintext)):
            return None
        if not key.is_active or not key.user.is_active:
            return None
        key.touch()
        return key

    def touch(self) -> None:
        """Record a use, at most one write per LAST_USED_RESOLUTION."""
        now = timezone.now()
        if self.last_used_at is not None and now - self.last_used_at < LAST_USED_RESOLUTION:
            return
        stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ApiKey.objects.filter(stale, pk=self.pk).update(last_used_at=now)
        self.last_used_at = now

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])


class IdempotencyRecord(models.Model):
    """The first response to a creating request sent with an `X-Idempotency-Key`.

    Unique per (user, scope, key); the row is inserted before the resource is created, in
    the same transaction, so a concurrent request with the same key waits on the unique
    index and then replays this response instead of creating a second resource.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idempotency_records"
    )
    scope = models.CharField(max_length=100, help_text="HTTP method and route name.")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of the path and body.")
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "scope", "key"], name="idempotency_user_scope_key_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"
