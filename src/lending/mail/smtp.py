"""Delivering email over SMTP (aiosmtplib). ``SMTP_URL`` says where:
``smtp://user:password@host:587`` (STARTTLS when the server offers it),
``smtps://...:465`` (TLS from the start), ``?from=library@example.org`` for the sender."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from lending.settings import Settings


class MailError(Exception):
    """The mail server refused or could not be reached; the message stays in the outbox."""


@dataclass(frozen=True)
class Mailer:
    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    sender: str
    sender_name: str = "Library of things"
    timeout: float = 20.0

    @classmethod
    def from_url(cls, url: str, *, default_sender_domain: str = "localhost") -> Mailer | None:
        if not url:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("SMTP_URL must start with smtp:// or smtps://")
        query = parse_qs(parts.query)
        sender = (query.get("from") or [f"library@{default_sender_domain}"])[0]
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (465 if parts.scheme == "smtps" else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=parts.scheme == "smtps",
            sender=sender,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer | None:
        """The mailer SMTP_URL names (None without one); the From address defaults to one at
        BASE_URL's host."""
        return cls.from_url(
            settings.smtp_url, default_sender_domain=urlsplit(settings.base_url).hostname or "localhost"
        )

    async def send(
        self, *, to: str, subject: str, body: str, language: str = "en", sender_name: str | None = None
    ) -> None:
        """``sender_name`` (the venue's name) is shown beside the From address."""
        message = EmailMessage()
        message["From"] = formataddr((sender_name or self.sender_name, self.sender))
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=self.sender.rsplit("@", 1)[-1])
        message.set_content(body)
        message["Content-Language"] = language  # after set_content, which resets Content-* headers
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.use_tls,
                start_tls=None if not self.use_tls else False,
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailError(str(exc)) from exc
