"""The payment provider behind a small interface: Stripe through the official SDK's
``StripeClient``. ``STRIPE_API_BASE`` points it at a local stand-in (the tests' fake Stripe);
without ``STRIPE_SECRET_KEY`` online payments are simply not offered.

Every call we make carries our own idempotency key, so a retried request (ours, or the SDK's
own network retries) never makes a second checkout, subscription change or refund. Stripe's
objects come back as plain dicts: nothing past this module sees a Stripe type.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import stripe

from lending import errors
from lending.i18n import lazy_gettext as _l

log = logging.getLogger("lending.payments")


class InvalidSignature(Exception):
    """The webhook's Stripe-Signature does not match its body and our secret."""


@dataclass(frozen=True)
class CheckoutRequest:
    reference: str  # our checkout's id, in the session's metadata
    nonce: str  # drawn once per checkout: with the reference, the idempotency key
    mode: str  # "payment" (one-off) or "subscription"
    amount_pence: int
    currency: str
    interval: str | None  # "month" or "year" for a subscription
    product_name: str
    success_url: str
    cancel_url: str
    customer_email: str | None = None
    customer_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CreatedCheckout:
    session_id: str
    url: str


def _plain(obj: Any) -> dict:
    return obj.to_dict(recursive=True) if hasattr(obj, "to_dict") else dict(obj)


class StripeGateway:
    def __init__(self, *, secret_key: str, webhook_secret: str, api_base: str = "") -> None:
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self._client: stripe.StripeClient | None = None
        self._http = stripe.HTTPXClient()
        if secret_key:
            kwargs: dict[str, Any] = {"max_network_retries": 2, "http_client": self._http}
            if api_base:
                kwargs["base_addresses"] = {"api": api_base.rstrip("/")}
            self._client = stripe.StripeClient(secret_key, **kwargs)

    async def close(self) -> None:
        """Let go of the connections to Stripe (when the app stops)."""
        await self._http.close_async()

    @property
    def configured(self) -> bool:
        return self._client is not None

    def _require(self) -> stripe.StripeClient:
        if self._client is None:
            raise errors.Unavailable(
                _l("Online payments are not set up here: pay at the counter instead."), code="payments_not_configured"
            )
        return self._client

    async def _call(self, what: str, call):
        try:
            return _plain(await call)
        except stripe.InvalidRequestError as exc:
            log.warning("stripe refused %s: %s", what, exc.user_message or exc)
            raise errors.RuleViolation(
                _l("The payment service refused this: %(reason)s", reason=str(exc.user_message or "invalid request")),
                code="payment_refused",
            ) from exc
        except stripe.StripeError as exc:
            log.warning("stripe failed %s: %s", what, exc)
            raise errors.Unavailable(
                _l("The payment service did not answer. Nothing was charged; try again in a few minutes."),
                code="payments_unavailable",
            ) from exc

    async def create_checkout(self, request: CheckoutRequest) -> CreatedCheckout:
        client = self._require()
        price_data: dict[str, Any] = {
            "currency": request.currency,
            "unit_amount": request.amount_pence,
            "product_data": {"name": request.product_name},
        }
        params: dict[str, Any] = {
            "mode": request.mode,
            "line_items": [{"quantity": 1, "price_data": price_data}],
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "client_reference_id": request.reference,
            "metadata": request.metadata,
            # Stripe's page has no Welsh; members are told so before they go there.
            "locale": "en-GB",
        }
        if request.mode == "subscription":
            price_data["recurring"] = {"interval": request.interval}
            params["subscription_data"] = {"metadata": request.metadata}
        else:
            params["payment_intent_data"] = {"metadata": request.metadata}
            params["submit_type"] = "pay"
        if request.customer_id:
            params["customer"] = request.customer_id
        elif request.customer_email:
            params["customer_email"] = request.customer_email
        session = await self._call(
            "checkout",
            client.v1.checkout.sessions.create_async(
                params=params, options={"idempotency_key": f"checkout-{request.reference}-{request.nonce}"}
            ),
        )
        return CreatedCheckout(session_id=session["id"], url=session["url"])

    async def expire_checkout(self, *, session_id: str) -> None:
        """Close a payment page nobody should use any more; one already paid or closed is left."""
        client = self._require()
        try:
            await client.v1.checkout.sessions.expire_async(session_id)
        except stripe.InvalidRequestError:
            log.info("checkout %s was already complete or expired", session_id)
        except stripe.StripeError as exc:
            log.warning("could not expire checkout %s: %s", session_id, exc)

    async def change_subscription_amount(
        self, *, subscription_id: str, amount_pence: int, currency: str, interval: str, reference: str
    ) -> dict:
        """The next invoices charge the new amount; nothing is prorated: the member chose to
        pay differently from now on, not to settle the difference."""
        client = self._require()
        subscription = await self._call("subscription", client.v1.subscriptions.retrieve_async(subscription_id))
        item = subscription["items"]["data"][0]
        product = item["price"]["product"]
        product_id = product["id"] if isinstance(product, dict) else product
        return await self._call(
            "subscription change",
            client.v1.subscriptions.update_async(
                subscription_id,
                params={
                    "items": [
                        {
                            "id": item["id"],
                            "price_data": {
                                "currency": currency,
                                "product": product_id,
                                "unit_amount": amount_pence,
                                "recurring": {"interval": interval},
                            },
                        }
                    ],
                    "proration_behavior": "none",
                },
                options={"idempotency_key": f"amount-{reference}"},
            ),
        )

    async def cancel_at_period_end(self, *, subscription_id: str, reference: str) -> dict:
        client = self._require()
        return await self._call(
            "cancellation",
            client.v1.subscriptions.update_async(
                subscription_id,
                params={"cancel_at_period_end": True},
                options={"idempotency_key": f"cancel-{reference}"},
            ),
        )

    async def invoice_payment_intent(self, *, invoice_id: str) -> str | None:
        """The payment intent that paid an invoice. Webhooks never carry an invoice's payments,
        so a refund of a recurring payment asks for them when it needs them."""
        client = self._require()
        invoice = await self._call(
            "invoice", client.v1.invoices.retrieve_async(invoice_id, params={"expand": ["payments"]})
        )
        for entry in (invoice.get("payments") or {}).get("data") or []:
            intent = (entry.get("payment") or {}).get("payment_intent")
            if intent:
                return intent if isinstance(intent, str) else intent.get("id")
        return None

    async def cancel_now(self, *, subscription_id: str) -> dict:
        """End a subscription at once (a coordinator refunded it and ended the membership)."""
        client = self._require()
        return await self._call("cancellation", client.v1.subscriptions.cancel_async(subscription_id))

    async def refund(self, *, payment_intent: str, amount_pence: int, reference: str) -> dict:
        client = self._require()
        return await self._call(
            "refund",
            client.v1.refunds.create_async(
                params={
                    "payment_intent": payment_intent,
                    "amount": amount_pence,
                    "reason": "requested_by_customer",
                    "metadata": {"reference": reference},
                },
                options={"idempotency_key": f"refund-{reference}"},
            ),
        )

    def verify_event(self, payload: bytes, signature: str | None) -> dict:
        """The event as a plain dict, once its signature is checked by the SDK's
        ``construct_event`` on the raw body."""
        if not self.webhook_secret:
            raise InvalidSignature("STRIPE_WEBHOOK_SECRET is not set")
        try:
            stripe.Webhook.construct_event(payload, signature, self.webhook_secret)
        except (stripe.SignatureVerificationError, ValueError) as exc:
            raise InvalidSignature(str(exc)) from exc
        try:
            event = json.loads(payload)
        except ValueError as exc:  # construct_event parsed it already; belt and braces
            raise InvalidSignature("not JSON") from exc
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise InvalidSignature("not an event")
        return event


# No keys: online payment is not offered (the counter, the demo and tests that need no Stripe).
NO_GATEWAY = StripeGateway(secret_key="", webhook_secret="")
