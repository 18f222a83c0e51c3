"""send_email through a real SMTP server (aiosmtpd on a loopback port) and Django's locmem."""

import email
import email.policy

import pytest
from aiosmtpd.controller import Controller
from django.core import mail

from engine.errors import NonRetryableError, StepError
from engine.handlers import send_email
from engine.tests.http_servers import free_port

CONTEXT = {"input": {}, "run": {"id": "r1", "step_id": "mail", "idempotency_key": "r1:mail"}}


class Inbox:
    """aiosmtpd handler: keeps what arrives; refuses some recipients and some messages."""

    def __init__(self):
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@refused.example"):
            return "550 5.1.1 no such user"
        if address.endswith("@busy.example"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        if "spam" in message["Subject"]:
            return "554 5.7.1 rejected as spam"
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp(settings):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.DEFAULT_FROM_EMAIL = "flows@example.com"
    yield inbox
    controller.stop()


async def test_sends_text_and_html_to_all_recipients(smtp):
    out = await send_email.execute(
        {
            "to": ["Ada <ada@example.com>", "bob@example.com"],
            "cc": "carol@example.com",
            "bcc": ["dave@example.com"],
            "subject": "Report ready",
            "body": "Hello in text",
            "html": "<p>Hello in <b>HTML</b></p>",
            "reply_to": "help@example.com",
        },
        CONTEXT,
    )
    everyone = ["ada@example.com", "bob@example.com", "carol@example.com", "dave@example.com"]
    assert out["sent_to"] == everyone
    assert out["message_id"].startswith("<") and out["message_id"].endswith("@example.com>")
    [(sender, recipients, message)] = smtp.messages
    assert sender == "flows@example.com"
    assert recipients == everyone
    assert message["Subject"] == "Report ready"
    assert message["Message-ID"] == out["message_id"]
    assert message["To"] == "Ada <ada@example.com>, bob@example.com"
    assert message["Cc"] == "carol@example.com"
    assert message["Bcc"] is None  # blind copies stay out of the headers
    assert message["Reply-To"] == "help@example.com"
    assert message["X-Flowmatrx-Idempotency-Key"] == "r1:mail"
    assert message.get_body(("plain",)).get_content().strip() == "Hello in text"
    assert message.get_body(("html",)).get_content().strip() == "<p>Hello in <b>HTML</b></p>"


async def test_from_overrides_the_default_and_text_only_mail(smtp):
    out = await send_email.execute(
        {"to": "ada@example.com", "subject": "Hi", "body": "x", "from": "Bot <bot@flows.test>"},
        CONTEXT,
    )
    [(sender, _, message)] = smtp.messages
    assert sender == "bot@flows.test"
    assert message["From"] == "Bot <bot@flows.test>"
    assert out["message_id"].endswith("@flows.test>")
    assert not message.is_multipart()


async def test_refused_recipient_is_not_retryable(smtp):
    with pytest.raises(StepError, match=r"refused nobody@refused\.example") as caught:
        await send_email.execute({"to": "nobody@refused.example", "subject": "x"}, CONTEXT)
    assert not caught.value.retryable
    assert smtp.messages == []


async def test_temporarily_refused_recipient_is_retryable(smtp):
    with pytest.raises(StepError, match=r"refused a@busy\.example") as caught:
        await send_email.execute({"to": "a@busy.example", "subject": "x"}, CONTEXT)
    assert caught.value.retryable


async def test_rejected_message_is_not_retryable(smtp):
    with pytest.raises(StepError, match=r"554 5\.7\.1 rejected as spam") as caught:
        await send_email.execute({"to": "a@example.com", "subject": "spam!"}, CONTEXT)
    assert not caught.value.retryable


async def test_server_down_is_retryable(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    with pytest.raises(StepError, match="cannot reach the mail server") as caught:
        await send_email.execute({"to": "a@example.com", "subject": "x"}, CONTEXT)
    assert caught.value.retryable


async def test_configured_backend_is_used(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "default@example.org"
    out = await send_email.execute(
        {"to": 'a@example.com, "Doe, B." <b@example.com>, ', "subject": "S", "body": "B"},
        CONTEXT,
    )
    [message] = mail.outbox
    assert message.to == ["a@example.com", '"Doe, B." <b@example.com>']
    assert message.message()["To"] == 'a@example.com, "Doe, B." <b@example.com>'
    assert message.from_email == "default@example.org"
    assert message.extra_headers["Message-ID"] == out["message_id"]
    assert out["sent_to"] == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"subject": "x"}, "needs 'to'"),
        ({"to": [], "subject": "x"}, "needs 'to'"),
        ({"to": "a@example.com"}, "needs 'subject'"),
        ({"to": "bob@", "subject": "x"}, "'to' has an invalid address: 'bob@'"),
        ({"to": "not an address", "subject": "x"}, "'to' has an invalid address"),
        ({"to": ["a@example.com", 3], "subject": "x"}, "'to' must be an address or a list"),
        ({"to": "a@example.com\nBcc: evil@example.com", "subject": "x"}, "line break"),
        ({"to": "a@example.com", "cc": "nope", "subject": "x"}, "'cc' has an invalid address"),
        ({"to": "a@example.com", "subject": "x", "from": "me"}, "'from' has an invalid"),
        ({"to": "a@example.com", "subject": "a\nBcc: b@example.com"}, "'subject' must be one"),
        ({"to": "a@example.com", "subject": "x", "body": 5}, "'body' must be text, not int"),
        ({"to": ["x@example.com"] * 101, "subject": "x"}, "at most 100 recipients"),
    ],
)
async def test_bad_config_is_a_clear_error_and_sends_nothing(settings, config, message):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with pytest.raises(NonRetryableError, match=message):
        await send_email.execute(config, CONTEXT)
    assert mail.outbox == []
