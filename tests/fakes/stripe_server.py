"""A stateful stand-in for the Stripe API, run as a local process by the tests.

Why a server and not a mock: the app talks to Stripe through the real ``stripe`` SDK
(``StripeClient(key, base_addresses={"api": url})``), so a real HTTP server exercises the
SDK's encoding, error mapping, retries and idempotency keys exactly as production does, and
its webhooks are signed with the SDK's own helper so the app's signature check runs for real.

It keeps everything in memory, and models what the app relies on: customers, products,
prices, Checkout Sessions (one-off and subscription), subscriptions with their items' billing
periods, invoices, payment intents, charges, refunds and events. Request parameters are checked
against the SDK's own parameter types (``stripe.params``), so an unknown or misspelt parameter,
a missing required one or a wrong enum value is refused as Stripe would refuse it.

Some Stripe behaviour kept on purpose because it trips integrations up:

* ``invoice.payments`` and ``checkout.session.line_items`` are *includable*: absent unless
  asked for with ``expand`` (and never in webhook payloads).
* A cycle invoice's ``period_start``/``period_end`` cover the period that just ended; the paid
  service period is on its lines (and on the subscription items).
* ``canceled_at`` is set when ``cancel_at_period_end`` is requested, not when it ends.

Run it with ``python -m tests.fakes.stripe_server --port P [--webhook-url U --webhook-secret S]``;
it prints ``ready http://127.0.0.1:P`` once listening. Test-only control endpoints live under
``/_test/`` and the payment page a browser completes under ``/pay/{session_id}``.
"""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import html
import importlib
import json
import queue
import re
import secrets
import string
import sys
import threading
import time
import types
import typing
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

if __name__ == "__main__" and not __package__:
    # Run as a script, this folder would come first on sys.path and its stripe.py (the test
    # helper) would shadow the SDK; ``python -m tests.fakes.stripe_server`` is the normal way.
    import os.path

    _here = os.path.dirname(os.path.realpath(__file__))
    sys.path = [entry for entry in sys.path if os.path.realpath(entry or ".") != _here]

import stripe

API_VERSION = stripe.api_version
DEFAULT_WEBHOOK_SECRET = "whsec_test_fake"
DELIVERY_TIMEOUT = 10.0
DAY = 24 * 60 * 60
INTERVAL_SECONDS = {"day": DAY, "week": 7 * DAY, "month": 30 * DAY, "year": 365 * DAY}
# The longest billing period Stripe allows, in intervals.
MAX_INTERVAL_COUNT = {"day": 365, "week": 52, "month": 12, "year": 1}
# Stripe's minimum charge per currency, in the currency's smallest unit.
MINIMUM_CHARGE = {
    "usd": 50,
    "aud": 50,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}
MAXIMUM_AMOUNT = 99_999_999
ZERO_DECIMAL = {
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "ugx",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
}
SYMBOLS = {"gbp": "£", "usd": "$", "eur": "€", "jpy": "¥"}
CARD_SUCCEEDS = "4242424242424242"
CARD_DECLINED = "4000000000000002"
DECLINE = {
    "type": "card_error",
    "code": "card_declined",
    "decline_code": "generic_decline",
    "message": "Your card was declined.",
}
ALPHANUMERIC = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "_" + "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))


def now() -> int:
    return int(time.time())


def format_amount(amount: int, currency: str) -> str:
    """ "£5.00": what a person paying reads, so the page can be checked by eye and by tests."""
    currency = currency.lower()
    number = f"{amount:,}" if currency in ZERO_DECIMAL else f"{amount // 100:,}.{amount % 100:02d}"
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{number}" if symbol else f"{number} {currency.upper()}"


class ApiError(Exception):
    """A Stripe-shaped error; the SDK turns the status and body into its exception classes."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
        **extra: Any,
    ):
        super().__init__(message)
        self.status = status
        self.error = {"type": type, "message": message, "param": param, "code": code, **extra}

    def body(self) -> dict:
        return {"error": self.error}


def missing(param: str) -> ApiError:
    return ApiError(f"Missing required param: {param}.", param=param, code="parameter_missing")


def no_such(kind: str, object_id: str, param: str | None, status: int = 400) -> ApiError:
    return ApiError(f"No such {kind}: '{object_id}'", status=status, param=param, code="resource_missing")


def unmodelled(param: str, what: str | None = None) -> ApiError:
    """Stripe accepts this, the fake does not pretend to: better a loud 400 than a silent no-op."""
    return ApiError(
        f"The fake Stripe does not model {what or f'`{param}`'} (real Stripe accepts it); "
        "teach tests/fakes/stripe_server.py about it if the app needs it.",
        param=param,
        code="fake_parameter_unsupported",
    )


# --- form decoding ----------------------------------------------------------------------------

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def decode_pairs(pairs: list[tuple[str, str]]) -> dict:
    """Bracket notation (``a[b][0][c]=v``) into nested dicts; numeric keys stay dict keys here
    and become lists when the parameter types say so (see ``coerce``)."""
    root: dict = {}
    for key, value in pairs:
        match = _KEY.match(key)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))] if match else [key]
        node = root
        for index, part in enumerate(parts):
            if part == "":  # a[]=x appends
                part = str(len(node))
            if index == len(parts) - 1:
                node[part] = value
                break
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
    return root


def listify(value: Any) -> Any:
    """The shape to show when no type says otherwise: dicts keyed 0..n are lists."""
    if isinstance(value, dict):
        value = {key: listify(item) for key, item in value.items()}
        if value and all(key.isdigit() for key in value):
            return [value[key] for key in sorted(value, key=int)]
    elif isinstance(value, list):
        return [listify(item) for item in value]
    return value


# --- parameter checking against the SDK's TypedDicts ------------------------------------------

_WRAPPERS = {typing.NotRequired, typing.Required}
_UNION_TYPES = {typing.Union, types.UnionType}
_schema_cache: dict[str, Any] = {}
_hint_cache: dict[tuple[type, str], Any] = {}


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _evaluate(tp: Any, namespace: dict) -> Any:
    """Resolve a (possibly string) annotation; anything unresolvable is treated as Any."""
    if isinstance(tp, str):
        tp = typing.ForwardRef(tp)
    if isinstance(tp, typing.ForwardRef):
        try:
            tp = eval(tp.__forward_arg__, namespace)
        except Exception:
            return Any
    while typing.get_origin(tp) in _WRAPPERS or typing.get_origin(tp) is typing.Annotated:
        tp = _evaluate(typing.get_args(tp)[0], namespace)
    return tp


def _namespace(cls: type) -> dict:
    return vars(sys.modules[cls.__module__])


def _field_type(cls: type, key: str) -> Any:
    cache_key = (cls, key)
    if cache_key not in _hint_cache:
        _hint_cache[cache_key] = _evaluate(cls.__annotations__[key], _namespace(cls))
    return _hint_cache[cache_key]


def schema(name: str | None) -> Any:
    """``"checkout._session_create_params:SessionCreateParams"`` -> that TypedDict (or Any)."""
    if name is None:
        return Any
    if name not in _schema_cache:
        module_name, _, class_name = name.partition(":")
        try:
            _schema_cache[name] = getattr(importlib.import_module(f"stripe.params.{module_name}"), class_name)
        except (ImportError, AttributeError):
            _schema_cache[name] = Any
    return _schema_cache[name]


_REQUEST_OPTIONS = set(importlib.import_module("stripe._request_options").RequestOptions.__annotations__)


def coerce(value: Any, tp: Any, namespace: dict, path: str, top: bool = False) -> Any:
    """Check ``value`` (strings, dicts of strings) against an SDK type and convert integers,
    booleans and lists, raising the error Stripe would give."""
    tp = _evaluate(tp, namespace)
    origin = typing.get_origin(tp)
    if tp is Any:
        return listify(value)
    if origin in _UNION_TYPES:
        return _coerce_union(value, [_evaluate(arg, namespace) for arg in typing.get_args(tp)], namespace, path)
    if origin is typing.Literal:
        return _coerce_literal(value, typing.get_args(tp), path, open_ended=False)
    if origin in (list, list):
        return _coerce_list(value, typing.get_args(tp)[0] if typing.get_args(tp) else Any, namespace, path)
    if (
        origin in (dict, dict)
        or tp is dict
        or getattr(tp, "__name__", "") == "UntypedStripeObject"
        or getattr(origin, "__name__", "") == "UntypedStripeObject"
    ):
        if value == "":
            return ""
        if not isinstance(value, dict):
            raise ApiError(f"Invalid object: {path} must be a hash", param=path)
        return {key: listify(item) for key, item in value.items()}
    if _is_typeddict(tp):
        return _coerce_object(value, tp, path, top)
    if isinstance(value, (dict, list)):
        raise ApiError(f"Invalid {getattr(tp, '__name__', 'value')}: {path} must not be a hash or array", param=path)
    if tp is bool:
        if value not in ("true", "false"):
            raise ApiError(f"Invalid boolean: {value}", param=path, code="parameter_invalid_boolean")
        return value == "true"
    if tp is int:
        if not re.fullmatch(r"-?\d+", value):
            raise ApiError(f"Invalid integer: {value}", param=path, code="parameter_invalid_integer")
        return int(value)
    if tp in (float, Decimal):
        try:
            Decimal(value)
        except InvalidOperation:
            raise ApiError(f"Invalid decimal: {value}", param=path) from None
        return value
    return value


def _coerce_literal(value: Any, allowed: tuple, path: str, open_ended: bool) -> Any:
    if isinstance(value, (dict, list)):
        raise ApiError(f"Invalid {path}: must be a string", param=path)
    if value in [str(item) for item in allowed]:
        return value
    choices = [str(item) for item in allowed if item != ""]
    if open_ended and not choices:
        return value
    if not choices:
        raise ApiError(f"Invalid {path}: must be a hash or an empty string", param=path)
    listed = ", ".join(choices[:-1]) + (", or " if len(choices) > 1 else "") + choices[-1]
    raise ApiError(f"Invalid {path}: must be one of {listed}", param=path)


def _coerce_union(value: Any, options: list, namespace: dict, path: str) -> Any:
    literals = [
        arg for option in options if typing.get_origin(option) is typing.Literal for arg in typing.get_args(option)
    ]
    if value == "" and "" in literals:
        return ""
    lists = [option for option in options if typing.get_origin(option) in (list, list)]
    objects = [
        option
        for option in options
        if option is not str
        and (
            _is_typeddict(option) or typing.get_origin(option) in (dict, dict) or "UntypedStripeObject" in repr(option)
        )
    ]
    if isinstance(value, list) or (
        isinstance(value, dict) and value and all(k.isdigit() for k in value) and lists and not objects
    ):
        if lists:
            return coerce(value, lists[0], namespace, path)
        raise ApiError(f"Invalid {path}: must not be an array", param=path)
    if isinstance(value, dict):
        if objects:
            return coerce(value, objects[0], namespace, path)
        raise ApiError(f"Invalid {path}: must not be a hash", param=path)
    if int in options and re.fullmatch(r"-?\d+", value):
        return int(value)
    if bool in options and value in ("true", "false"):
        return value == "true"
    if Any in options:
        return value
    if str in options or Decimal in options:
        if literals:
            return _coerce_literal(value, tuple(literals), path, open_ended=True)
        return value
    if literals:
        return _coerce_literal(value, tuple(literals), path, open_ended=False)
    if value == "" and objects:
        return ""
    if int in options:
        raise ApiError(f"Invalid integer: {value}", param=path, code="parameter_invalid_integer")
    if objects:
        raise ApiError(f"Invalid object: {path} must be a hash", param=path)
    return value


def _coerce_list(value: Any, item_type: Any, namespace: dict, path: str) -> Any:
    if value == "":
        return ""
    if isinstance(value, dict) and all(key.isdigit() for key in value):
        value = [value[key] for key in sorted(value, key=int)]
    if not isinstance(value, list):
        raise ApiError(f"Invalid array: {path} must be an array", param=path)
    return [coerce(item, item_type, namespace, f"{path}[{index}]") for index, item in enumerate(value)]


def _coerce_object(value: Any, cls: type, path: str, top: bool) -> Any:
    if value == "":
        return ""
    if not isinstance(value, dict):
        raise ApiError(f"Invalid object: {path} must be a hash", param=path)
    known = set(cls.__annotations__) - (_REQUEST_OPTIONS if top else set())
    result = {}
    for key, item in value.items():
        param = name(path, key)
        if key not in known:
            raise ApiError(f"Received unknown parameter: {param}", param=param, code="parameter_unknown")
        result[key] = coerce(item, _field_type(cls, key), _namespace(cls), param)
    for key in sorted(cls.__required_keys__ - set(value)):
        if not (top and key in _REQUEST_OPTIONS):
            raise missing(name(path, key))
    return result


def check_params(raw: dict, schema_name: str | None) -> dict:
    tp = schema(schema_name)
    if tp is Any:
        return listify(raw)
    return coerce(raw, tp, _namespace(tp), "", top=True)


# --- small validators -------------------------------------------------------------------------


def blank(value: Any) -> Any:
    """Stripe treats an empty string as "unset"."""
    return None if value == "" else value


def check_email(value: Any, param: str) -> str | None:
    value = blank(value)
    if value is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise ApiError(f"Invalid email address: {value}", param=param, code="email_invalid")
    return value


def check_currency(value: str, param: str) -> str:
    if not re.fullmatch(r"[a-z]{3}", value or ""):
        raise ApiError(f"Invalid currency: {value}. Use a three-letter ISO currency code in lower case.", param=param)
    return value


def check_url(value: Any, param: str) -> str:
    if not isinstance(value, str) or not re.match(r"https?://[^\s/]+", value):
        raise ApiError("Not a valid URL", param=param, code="url_invalid")
    return value


def merge_metadata(existing: dict | None, update: Any, param: str = "metadata") -> dict:
    """Stripe's metadata rules: "" clears it all, a key set to "" is removed, at most 50 keys,
    keys up to 40 characters, values strings up to 500."""
    result = dict(existing or {})
    if update is None:
        return result
    if update == "":
        return {}
    for key, value in update.items():
        if not isinstance(value, str):
            raise ApiError(f"Invalid value type: {param}[{key}] must be a string", param=f"{param}[{key}]")
        if len(key) > 40:
            raise ApiError(
                f"Metadata keys can have up to 40 characters; {key!r} has {len(key)}.", param=f"{param}[{key}]"
            )
        if len(value) > 500:
            raise ApiError(
                f"Metadata values can have up to 500 characters; {param}[{key}] has {len(value)}.",
                param=f"{param}[{key}]",
            )
        if value == "":
            result.pop(key, None)
        else:
            result[key] = value
    if len(result) > 50:
        raise ApiError("Metadata can have up to 50 keys.", param=param)
    return result


def name(prefix: str, key: str) -> str:
    """A nested parameter's name as Stripe reports it: ``line_items[0][price_data][currency]``."""
    return f"{prefix}[{key}]" if prefix else key


def previous_attributes(old: dict, new: dict) -> dict:
    return {key: copy.deepcopy(old.get(key)) for key in new if old.get(key) != new[key]}


# --- routing ------------------------------------------------------------------------------------

API_ROUTES: list[tuple[str, re.Pattern, str, str | None, set | None]] = []
CONTROL_ROUTES: list[tuple[str, re.Pattern, str]] = []
ID = r"([A-Za-z0-9_]+)"


def api(method: str, pattern: str, params: str | None = None, supported: set[str] | None = None):
    """Register a Stripe API endpoint; ``params`` names its SDK parameter type, ``supported``
    (when given) the top-level parameters the fake really implements."""

    def register(function):
        API_ROUTES.append((method, re.compile(f"^{pattern}$"), function.__name__, params, supported))
        return function

    return register


def control(method: str, pattern: str):
    def register(function):
        CONTROL_ROUTES.append((method, re.compile(f"^{pattern}$"), function.__name__))
        return function

    return register


class Job:
    def __init__(self, event_id: str):
        self.event_id = event_id
        self.done = threading.Event()
        self.result: dict | None = None


KIND_NAMES = {
    "customer": "customer",
    "product": "product",
    "price": "price",
    "checkout.session": "checkout session",
    "subscription": "subscription",
    "invoice": "invoice",
    "invoice_payment": "invoice payment",
    "payment_intent": "payment_intent",
    "charge": "charge",
    "refund": "refund",
    "event": "event",
}


class State:
    """Everything the fake knows. One lock serialises every action, so each action's events are
    queued in order and idempotent replays never race; webhooks go out from a worker thread
    that never holds it (the app may call back into the API while handling one)."""

    def __init__(self, base_url: str, webhook_url: str | None = None, webhook_secret: str = DEFAULT_WEBHOOK_SECRET):
        self.base_url = base_url
        self.lock = threading.RLock()
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.current_request: dict | None = None
        self.reset()
        self.queue: queue.Queue[Job] = queue.Queue()
        self.pending = 0
        self.pending_changed = threading.Condition()
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())
        threading.Thread(target=self._deliver_forever, name="webhooks", daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.objects: dict[str, dict] = {}
            self.private: dict[str, dict] = {}
            self.event_ids: list[str] = []
            self.payloads: dict[str, str] = {}
            self.deliveries: dict[str, list[dict]] = {}
            self.requests: list[dict] = []
            self.idempotency: dict[str, dict] = {}

    # --- storage -----------------------------------------------------------------------------

    def put(self, obj: dict, **private: Any) -> dict:
        self.objects[obj["id"]] = obj
        self.private[obj["id"]] = private
        return obj

    def find(self, kind: str, object_id: Any, param: str | None = None) -> dict:
        """The live object; a 404 when it is the path's resource, a 400 when a parameter names it."""
        obj = self.objects.get(object_id) if isinstance(object_id, str) else None
        if obj is None or obj.get("object") != kind or obj.get("deleted"):
            raise no_such(KIND_NAMES.get(kind, kind), str(object_id), param or "id", 400 if param else 404)
        return obj

    def render(self, object_id: str) -> dict:
        return copy.deepcopy(self.objects[object_id])

    # --- events and delivery -----------------------------------------------------------------

    def emit(self, type_: str, obj: dict, previous: dict | None = None, deliver: bool = True) -> dict:
        data: dict = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        event = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1 if self.webhook_url else 0,
            "request": dict(self.current_request or {"id": None, "idempotency_key": None}),
            "type": type_,
        }
        self.objects[event["id"]] = event
        self.event_ids.append(event["id"])
        self.payloads[event["id"]] = json.dumps(event)
        self.deliveries[event["id"]] = []
        if self.webhook_url and deliver:
            self.enqueue(event["id"])
        return event

    def enqueue(self, event_id: str) -> Job:
        job = Job(event_id)
        with self.pending_changed:
            self.pending += 1
        self.queue.put(job)
        return job

    def _deliver_forever(self) -> None:
        while True:
            job = self.queue.get()
            try:
                job.result = self.deliver(job.event_id)
            except Exception:  # never let one bad delivery stop the worker
                import traceback

                traceback.print_exc()
            finally:
                job.done.set()
                with self.pending_changed:
                    self.pending -= 1
                    self.pending_changed.notify_all()

    def deliver(self, event_id: str, barrier: threading.Barrier | None = None) -> dict | None:
        """POST the stored body, freshly signed; record the status (or the connection error)."""
        with self.lock:
            url, secret, payload = self.webhook_url, self.webhook_secret, self.payloads.get(event_id)
        if not url or payload is None:
            if barrier is not None:
                barrier.abort()
            return None
        header = stripe.WebhookSignature.generate_signature_header(payload, secret)
        request = urllib.request.Request(
            url,
            data=payload.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": header,
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            },
        )
        if barrier is not None:
            try:
                barrier.wait(timeout=DELIVERY_TIMEOUT)  # all copies leave together
            except threading.BrokenBarrierError:
                pass
        try:
            with self.opener.open(request, timeout=DELIVERY_TIMEOUT) as response:
                response.read()
                result = {"status": response.status, "error": None}
        except urllib.error.HTTPError as error:
            error.read()
            result = {"status": error.code, "error": None}
        except Exception as error:  # connection refused, timeout: recorded, not retried
            result = {"status": None, "error": f"{type(error).__name__}: {error}"}
        with self.lock:
            self.deliveries.setdefault(event_id, []).append(result)
        return result

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.pending_changed:
            while self.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.pending_changed.wait(left)
        return True

    # --- expansion ---------------------------------------------------------------------------

    def expand(self, obj: dict, paths: Any) -> dict:
        for path in paths or []:
            if not isinstance(path, str):
                raise ApiError("Invalid expand: must be strings", param="expand")
            self._expand(obj, path.split("."), path)
        return obj

    def _expand(self, node: Any, parts: list[str], path: str) -> None:
        if not parts:
            return
        if isinstance(node, list):
            for item in node:
                self._expand(item, parts, path)
            return
        if not isinstance(node, dict):
            return
        key, rest = parts[0], parts[1:]
        if node.get("object") == "invoice" and key == "payments":
            node["payments"] = self._list_object(
                [self.render(i) for i in self._ids("invoice_payment") if self.objects[i]["invoice"] == node["id"]],
                f"/v1/invoices/{node['id']}/payments",
            )
        elif node.get("object") == "checkout.session" and key == "line_items":
            node["line_items"] = self._list_object(
                self.line_items(node["id"]), f"/v1/checkout/sessions/{node['id']}/line_items"
            )
        if key not in node:
            raise ApiError(f"This property cannot be expanded ({path}).", param="expand")
        value = node[key]
        if isinstance(value, str):
            if value not in self.objects:
                raise ApiError(f"This property cannot be expanded ({path}).", param="expand")
            value = node[key] = self.render(value)
        self._expand(value, rest, path)

    # --- lists -------------------------------------------------------------------------------

    def _ids(self, kind: str) -> list[str]:
        return [key for key, obj in self.objects.items() if obj.get("object") == kind]

    @staticmethod
    def _list_object(data: list, url: str, has_more: bool = False) -> dict:
        return {"object": "list", "data": data, "has_more": has_more, "url": url}

    def list_of(
        self,
        kind: str,
        params: dict,
        url: str,
        fields: tuple[str, ...] = (),
        keep=lambda obj: True,
        ids: list[str] | None = None,
    ) -> dict:
        """Newest first, filtered by equality on ``fields`` and by ``created[gt|gte|lt|lte]``,
        paged with ``limit``/``starting_after``/``ending_before`` as Stripe does."""
        items = [self.objects[i] for i in (ids if ids is not None else self._ids(kind))]
        items = [obj for obj in items if not obj.get("deleted") and keep(obj)]
        for field in fields:
            if blank(params.get(field)) is not None:
                items = [obj for obj in items if obj.get(field) == params[field]]
        created = params.get("created")
        if isinstance(created, int):
            items = [obj for obj in items if obj["created"] == created]
        elif isinstance(created, dict):
            tests = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
            for op, bound in created.items():
                items = [obj for obj in items if tests[op](obj["created"], int(bound))]
        items.reverse()
        limit = params.get("limit", 10)
        if not 1 <= limit <= 100:
            raise ApiError("Invalid limit: must be between 1 and 100", param="limit")
        positions = [obj["id"] for obj in items]
        if params.get("starting_after"):
            if params["starting_after"] not in positions:
                raise no_such(KIND_NAMES.get(kind, kind), params["starting_after"], "starting_after")
            items = items[positions.index(params["starting_after"]) + 1 :]
        elif params.get("ending_before"):
            if params["ending_before"] not in positions:
                raise no_such(KIND_NAMES.get(kind, kind), params["ending_before"], "ending_before")
            items = items[: positions.index(params["ending_before"])][-limit:]
        return self._list_object([copy.deepcopy(obj) for obj in items[:limit]], url, len(items) > limit)

    # --- builders ----------------------------------------------------------------------------

    def new_customer(
        self,
        *,
        email=None,
        name=None,
        metadata=None,
        preferred_locales=None,
        phone=None,
        description=None,
        address=None,
    ) -> dict:
        return self.put(
            {
                "id": new_id("cus"),
                "object": "customer",
                "address": address,
                "balance": 0,
                "created": now(),
                "currency": None,
                "default_source": None,
                "delinquent": False,
                "description": description,
                "discount": None,
                "email": email,
                "invoice_prefix": "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8)),
                "invoice_settings": {
                    "custom_fields": None,
                    "default_payment_method": None,
                    "footer": None,
                    "rendering_options": None,
                },
                "livemode": False,
                "metadata": merge_metadata({}, metadata),
                "name": name,
                "next_invoice_sequence": 1,
                "phone": phone,
                "preferred_locales": preferred_locales or [],
                "shipping": None,
                "tax_exempt": "none",
                "test_clock": None,
            }
        )

    def new_product(self, *, name: str, description=None, metadata=None, images=None, param: str = "metadata") -> dict:
        created = now()
        return self.put(
            {
                "id": new_id("prod"),
                "object": "product",
                "active": True,
                "attributes": [],
                "created": created,
                "default_price": None,
                "description": blank(description),
                "images": images or [],
                "livemode": False,
                "marketing_features": [],
                "metadata": merge_metadata({}, metadata, param),
                "name": name,
                "package_dimensions": None,
                "shippable": None,
                "statement_descriptor": None,
                "tax_code": None,
                "type": "service",
                "unit_label": None,
                "updated": created,
                "url": None,
            }
        )

    def check_price_data(self, data: dict, prefix: str, *, product_required: bool = False) -> dict:
        """Validate a ``price_data`` hash (nothing is created yet); returns what to build."""
        currency = check_currency(data.get("currency", ""), name(prefix, "currency"))
        if "unit_amount" not in data:
            if "unit_amount_decimal" in data:
                raise unmodelled(name(prefix, "unit_amount_decimal"))
            raise missing(name(prefix, "unit_amount"))
        amount = data["unit_amount"]
        if amount < 0:
            raise ApiError("This value must be greater than or equal to 0.", param=name(prefix, "unit_amount"))
        if amount > MAXIMUM_AMOUNT:
            raise ApiError(
                f"Amount must be no more than {format_amount(MAXIMUM_AMOUNT, currency)}",
                param=name(prefix, "unit_amount"),
                code="amount_too_large",
            )
        product, product_data = blank(data.get("product")), data.get("product_data")
        if product is not None and product_data is not None:
            raise ApiError(
                "You may only specify one of these parameters: product, product_data.", param=name(prefix, "product")
            )
        if product is None and product_data is None:
            raise missing(name(prefix, "product") if product_required else name(prefix, "product_data"))
        if product is not None:
            self.find("product", product, name(prefix, "product"))
        recurring = blank(data.get("recurring"))
        if recurring is not None:
            count = recurring.get("interval_count", 1)
            if not 1 <= count <= MAX_INTERVAL_COUNT[recurring["interval"]]:
                raise ApiError(
                    "Invalid recurring interval: the maximum billing period is one year.",
                    param=name(prefix, "recurring") + "[interval_count]",
                )
        if product_data is not None:
            merge_metadata({}, product_data.get("metadata"), name(prefix, "product_data") + "[metadata]")
        return {
            "currency": currency,
            "unit_amount": amount,
            "product": product,
            "product_data": product_data,
            "recurring": recurring,
        }

    def new_price(self, plan: dict, metadata=None) -> dict:
        product = plan["product"]
        if product is None:
            data = plan["product_data"]
            product = self.new_product(
                name=data["name"],
                description=data.get("description"),
                metadata=data.get("metadata"),
                images=data.get("images"),
            )["id"]
        recurring = plan["recurring"]
        return self.put(
            {
                "id": new_id("price"),
                "object": "price",
                "active": True,
                "billing_scheme": "per_unit",
                "created": now(),
                "currency": plan["currency"],
                "custom_unit_amount": None,
                "livemode": False,
                "lookup_key": None,
                "metadata": merge_metadata({}, metadata),
                "nickname": None,
                "product": product,
                "recurring": None
                if recurring is None
                else {
                    "interval": recurring["interval"],
                    "interval_count": recurring.get("interval_count", 1),
                    "meter": None,
                    "trial_period_days": None,
                    "usage_type": "licensed",
                },
                "tax_behavior": "unspecified",
                "tiers_mode": None,
                "transform_quantity": None,
                "type": "one_time" if recurring is None else "recurring",
                "unit_amount": plan["unit_amount"],
                "unit_amount_decimal": str(plan["unit_amount"]),
            }
        )

    def new_payment(
        self,
        *,
        amount: int,
        currency: str,
        customer: str | None,
        metadata: dict,
        outcome: str,
        description: str | None = None,
    ) -> dict:
        """A payment intent, with a succeeded charge when ``outcome`` is "succeed"; "processing"
        for a delayed method; "fail" leaves it needing a new payment method."""
        intent = self.put(
            {
                "id": new_id("pi"),
                "object": "payment_intent",
                "amount": amount,
                "amount_capturable": 0,
                "amount_received": 0,
                "canceled_at": None,
                "cancellation_reason": None,
                "capture_method": "automatic_async",
                "client_secret": None,
                "confirmation_method": "automatic",
                "created": now(),
                "currency": currency,
                "customer": customer,
                "description": description,
                "last_payment_error": None,
                "latest_charge": None,
                "livemode": False,
                "metadata": dict(metadata),
                "next_action": None,
                "payment_method": new_id("pm"),
                "payment_method_types": ["card"],
                "receipt_email": None,
                "status": "processing",
            }
        )
        intent["client_secret"] = f"{intent['id']}_secret_{new_id('x')[2:]}"
        if outcome == "succeed":
            self.succeed_payment(intent)
        elif outcome == "fail":
            self.fail_payment(intent)
        return intent

    def succeed_payment(self, intent: dict) -> dict:
        charge = self.put(
            {
                "id": new_id("ch"),
                "object": "charge",
                "amount": intent["amount"],
                "amount_captured": intent["amount"],
                "amount_refunded": 0,
                "balance_transaction": new_id("txn"),
                "billing_details": {"address": None, "email": None, "name": None, "phone": None},
                "captured": True,
                "created": now(),
                "currency": intent["currency"],
                "customer": intent["customer"],
                "description": intent["description"],
                "disputed": False,
                "failure_code": None,
                "failure_message": None,
                "livemode": False,
                "metadata": dict(intent["metadata"]),
                "outcome": {
                    "network_status": "approved_by_network",
                    "reason": None,
                    "risk_level": "normal",
                    "seller_message": "Payment complete.",
                    "type": "authorized",
                },
                "paid": True,
                "payment_intent": intent["id"],
                "payment_method": intent["payment_method"],
                "payment_method_details": {
                    "type": "card",
                    "card": {
                        "brand": "visa",
                        "country": "US",
                        "exp_month": 12,
                        "exp_year": 2034,
                        "funding": "credit",
                        "last4": "4242",
                    },
                },
                "receipt_email": None,
                "receipt_url": f"{self.base_url}/receipts/{intent['id']}",
                "refunded": False,
                "status": "succeeded",
            }
        )
        intent.update(
            status="succeeded", amount_received=intent["amount"], latest_charge=charge["id"], last_payment_error=None
        )
        return charge

    @staticmethod
    def fail_payment(intent: dict) -> None:
        intent.update(status="requires_payment_method", last_payment_error=dict(DECLINE))

    # --- customers, products, prices ---------------------------------------------------------

    CUSTOMER_FIELDS = {"email", "name", "metadata", "preferred_locales", "phone", "description", "address", "expand"}

    @api("POST", "/v1/customers", "_customer_create_params:CustomerCreateParams", CUSTOMER_FIELDS)
    def create_customer(self, p: dict) -> dict:
        return copy.deepcopy(
            self.new_customer(
                email=check_email(p.get("email"), "email"),
                name=blank(p.get("name")),
                metadata=p.get("metadata"),
                preferred_locales=blank(p.get("preferred_locales")),
                phone=blank(p.get("phone")),
                description=blank(p.get("description")),
                address=blank(p.get("address")),
            )
        )

    @api("GET", "/v1/customers", "_customer_list_params:CustomerListParams")
    def list_customers(self, p: dict) -> dict:
        return self.list_of("customer", p, "/v1/customers", ("email",))

    @api("GET", f"/v1/customers/{ID}", "_customer_retrieve_params:CustomerRetrieveParams")
    def retrieve_customer(self, p: dict, customer_id: str) -> dict:
        obj = self.objects.get(customer_id)
        if obj is not None and obj.get("object") == "customer" and obj.get("deleted"):
            return copy.deepcopy(obj)  # Stripe answers a deleted customer with its stub
        return copy.deepcopy(self.find("customer", customer_id))

    @api("POST", f"/v1/customers/{ID}", "_customer_update_params:CustomerUpdateParams", CUSTOMER_FIELDS)
    def update_customer(self, p: dict, customer_id: str) -> dict:
        customer = self.find("customer", customer_id)
        changes = {key: blank(p[key]) for key in ("name", "phone", "description", "address") if key in p}
        if "email" in p:
            changes["email"] = check_email(p["email"], "email")
        if "preferred_locales" in p:
            changes["preferred_locales"] = blank(p["preferred_locales"]) or []
        changes["metadata"] = merge_metadata(customer["metadata"], p.get("metadata"))
        old = copy.deepcopy(customer)
        customer.update(changes)
        changed = previous_attributes(old, customer)
        if changed:
            self.emit("customer.updated", customer, changed)
        return copy.deepcopy(customer)

    @api("DELETE", f"/v1/customers/{ID}", "_customer_delete_params:CustomerDeleteParams")
    def delete_customer(self, p: dict, customer_id: str) -> dict:
        customer = self.find("customer", customer_id)
        self.emit("customer.deleted", customer)
        self.objects[customer_id] = {"id": customer_id, "object": "customer", "deleted": True}
        return copy.deepcopy(self.objects[customer_id])

    PRODUCT_FIELDS = {"name", "description", "metadata", "images", "active", "expand"}

    @api("POST", "/v1/products", "_product_create_params:ProductCreateParams", PRODUCT_FIELDS - {"active"})
    def create_product(self, p: dict) -> dict:
        if not p.get("name"):
            raise missing("name")
        return copy.deepcopy(
            self.new_product(
                name=p["name"],
                description=p.get("description"),
                metadata=p.get("metadata"),
                images=blank(p.get("images")),
            )
        )

    @api("GET", "/v1/products", "_product_list_params:ProductListParams")
    def list_products(self, p: dict) -> dict:
        return self.list_of("product", p, "/v1/products", ("active",))

    @api("GET", f"/v1/products/{ID}", "_product_retrieve_params:ProductRetrieveParams")
    def retrieve_product(self, p: dict, product_id: str) -> dict:
        return copy.deepcopy(self.find("product", product_id))

    @api("POST", f"/v1/products/{ID}", "_product_update_params:ProductUpdateParams", PRODUCT_FIELDS)
    def update_product(self, p: dict, product_id: str) -> dict:
        product = self.find("product", product_id)
        if p.get("name") == "":
            raise ApiError("You cannot unset the name of a product.", param="name")
        for key in ("name", "active", "description", "images"):
            if key in p:
                product[key] = blank(p[key]) if key != "images" else (blank(p[key]) or [])
        product["metadata"] = merge_metadata(product["metadata"], p.get("metadata"))
        product["updated"] = now()
        return copy.deepcopy(product)

    @api(
        "POST",
        "/v1/prices",
        "_price_create_params:PriceCreateParams",
        {"currency", "unit_amount", "product", "product_data", "recurring", "metadata", "expand"},
    )
    def create_price(self, p: dict) -> dict:
        plan = self.check_price_data(p, "", product_required=True)
        return copy.deepcopy(self.new_price(plan, p.get("metadata")))

    @api("GET", "/v1/prices", "_price_list_params:PriceListParams")
    def list_prices(self, p: dict) -> dict:
        return self.list_of("price", p, "/v1/prices", ("product", "active", "currency", "type"))

    @api("GET", f"/v1/prices/{ID}", "_price_retrieve_params:PriceRetrieveParams")
    def retrieve_price(self, p: dict, price_id: str) -> dict:
        return copy.deepcopy(self.find("price", price_id))

    # --- checkout sessions -------------------------------------------------------------------

    @api("POST", "/v1/checkout/sessions", "checkout._session_create_params:SessionCreateParams")
    def create_session(self, p: dict) -> dict:
        mode = p.get("mode")
        if not mode:
            raise missing("mode")
        if mode not in ("payment", "subscription"):
            raise unmodelled("mode", f"mode={mode}")
        if not p.get("success_url"):
            raise missing("success_url")
        check_url(p["success_url"], "success_url")
        if not p.get("cancel_url"):
            raise missing("cancel_url")
        check_url(p["cancel_url"], "cancel_url")
        if p.get("ui_mode") not in (None, "hosted"):
            raise unmodelled("ui_mode", f"ui_mode={p['ui_mode']}")
        other_mode = {"payment": "subscription_data", "subscription": "payment_intent_data"}[mode]
        if other_mode in p:
            raise ApiError(f"You can not pass `{other_mode}` in `{mode}` mode.", param=other_mode)

        items = blank(p.get("line_items"))
        if not items:
            raise ApiError(f"`line_items` is required in `{mode}` mode.", param="line_items", code="parameter_missing")
        if len(items) != 1:
            raise unmodelled("line_items", "more than one line item")
        item = items[0]
        if "quantity" not in item:
            raise missing("line_items[0][quantity]")
        if item["quantity"] != 1:
            raise unmodelled("line_items[0][quantity]", "a quantity other than 1")
        if ("price" in item) == ("price_data" in item):
            raise ApiError(
                "You must specify exactly one of `price` or `price_data`.", param="line_items[0][price_data]"
            )
        if "price" in item:
            price = self.find("price", item["price"], "line_items[0][price]")
            plan = None
            currency, amount, recurring = price["currency"], price["unit_amount"], price["recurring"]
        else:
            plan = self.check_price_data(item["price_data"], "line_items[0][price_data]")
            price = None
            currency, amount, recurring = plan["currency"], plan["unit_amount"], plan["recurring"]
        if mode == "payment" and recurring is not None:
            raise ApiError(
                "You specified `payment` mode but passed a recurring price. Either switch to "
                "`subscription` mode or use only one-time prices.",
                param="line_items[0]",
            )
        if mode == "subscription" and recurring is None:
            raise ApiError(
                "You must provide at least one recurring price in `subscription` mode when using prices.",
                param="line_items[0][price_data][recurring]",
            )
        minimum = MINIMUM_CHARGE.get(currency, 1)
        if amount < minimum:
            raise ApiError(
                f"The Checkout Session's total amount due must add up to at least "
                f"{format_amount(minimum, currency)} {currency}",
                param="line_items[0]",
                code="amount_too_small",
            )

        customer_id = blank(p.get("customer"))
        if customer_id is not None and blank(p.get("customer_email")) is not None:
            raise ApiError("You may only specify one of these parameters: customer, customer_email.", param="customer")
        if customer_id is not None:
            self.find("customer", customer_id, "customer")
        customer_email = check_email(p.get("customer_email"), "customer_email")
        created = now()
        expires_at = p.get("expires_at", created + DAY)
        if not created + 30 * 60 - 5 <= expires_at <= created + DAY + 5:
            raise ApiError(
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
                param="expires_at",
            )
        if len(p.get("client_reference_id") or "") > 200:
            raise ApiError("client_reference_id can be at most 200 characters.", param="client_reference_id")
        metadata = merge_metadata({}, p.get("metadata"))
        subscription_data = blank(p.get("subscription_data")) or {}
        payment_intent_data = blank(p.get("payment_intent_data")) or {}
        for key in set(subscription_data) - {"metadata", "description"}:
            raise unmodelled(f"subscription_data[{key}]")
        subscription_metadata = merge_metadata({}, subscription_data.get("metadata"), "subscription_data[metadata]")
        payment_metadata = merge_metadata({}, payment_intent_data.get("metadata"), "payment_intent_data[metadata]")

        if price is None:
            price = self.new_price(plan)
        session_id = new_id("cs_test")
        return copy.deepcopy(
            self.put(
                {
                    "id": session_id,
                    "object": "checkout.session",
                    "after_expiration": None,
                    "allow_promotion_codes": p.get("allow_promotion_codes"),
                    "amount_subtotal": amount,
                    "amount_total": amount,
                    "automatic_tax": {"enabled": False, "liability": None, "status": None},
                    "billing_address_collection": p.get("billing_address_collection"),
                    "cancel_url": p["cancel_url"],
                    "client_reference_id": blank(p.get("client_reference_id")),
                    "client_secret": None,
                    "consent": None,
                    "consent_collection": None,
                    "created": created,
                    "currency": currency,
                    "custom_fields": [],
                    "customer": customer_id,
                    "customer_creation": None if customer_id else p.get("customer_creation", "if_required"),
                    "customer_details": None,
                    "customer_email": customer_email,
                    "expires_at": expires_at,
                    "invoice": None,
                    "livemode": False,
                    "locale": p.get("locale"),
                    "metadata": metadata,
                    "mode": mode,
                    "payment_intent": None,
                    "payment_link": None,
                    "allowed_payment_method_types": blank(p.get("allowed_payment_method_types")),
                    "payment_method_types": blank(p.get("allowed_payment_method_types")) or ["card"],
                    "payment_status": "unpaid",
                    "recovered_from": None,
                    "setup_intent": None,
                    "shipping_address_collection": None,
                    "shipping_cost": None,
                    "shipping_options": [],
                    "status": "open",
                    "submit_type": p.get("submit_type"),
                    "subscription": None,
                    "success_url": p["success_url"],
                    "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
                    "ui_mode": "hosted",
                    "url": f"{self.base_url}/pay/{session_id}",
                },
                price=price["id"],
                line_item=new_id("li"),
                subscription_metadata=subscription_metadata,
                subscription_description=subscription_data.get("description"),
                payment_metadata=payment_metadata,
                payment_description=payment_intent_data.get("description"),
            )
        )

    def line_items(self, session_id: str) -> list[dict]:
        session, facts = self.objects[session_id], self.private[session_id]
        price = self.render(facts["price"])
        product = self.objects.get(price["product"], {})
        return [
            {
                "id": facts["line_item"],
                "object": "item",
                "amount_discount": 0,
                "amount_subtotal": session["amount_subtotal"],
                "amount_tax": 0,
                "amount_total": session["amount_total"],
                "currency": session["currency"],
                "description": product.get("name"),
                "price": price,
                "quantity": 1,
            }
        ]

    @api("GET", "/v1/checkout/sessions", "checkout._session_list_params:SessionListParams")
    def list_sessions(self, p: dict) -> dict:
        return self.list_of(
            "checkout.session", p, "/v1/checkout/sessions", ("customer", "payment_intent", "subscription", "status")
        )

    @api("GET", f"/v1/checkout/sessions/{ID}", "checkout._session_retrieve_params:SessionRetrieveParams")
    def retrieve_session(self, p: dict, session_id: str) -> dict:
        return copy.deepcopy(self.find("checkout.session", session_id))

    @api(
        "GET",
        f"/v1/checkout/sessions/{ID}/line_items",
        "checkout._session_list_line_items_params:SessionListLineItemsParams",
    )
    def session_line_items(self, p: dict, session_id: str) -> dict:
        self.find("checkout.session", session_id)
        return self._list_object(self.line_items(session_id), f"/v1/checkout/sessions/{session_id}/line_items")

    @api("POST", f"/v1/checkout/sessions/{ID}/expire", "checkout._session_expire_params:SessionExpireParams")
    def expire_session(self, p: dict, session_id: str) -> dict:
        session = self.find("checkout.session", session_id)
        if session["status"] != "open":
            raise ApiError('Only Checkout Sessions with a status in ["open"] can be expired.')
        self._expire(session)
        return copy.deepcopy(session)

    def _expire(self, session: dict) -> None:
        session["status"] = "expired"
        self.emit("checkout.session.expired", session)

    # --- completing a checkout (the payment page and the control endpoint) --------------------

    def complete(self, session: dict, outcome: str, email: str | None = None) -> tuple[int, dict]:
        """What Stripe does when the person paying submits the form."""
        if outcome not in ("succeed", "fail", "async"):
            raise ApiError('outcome must be "succeed", "fail" or "async"', param="outcome")
        if session["status"] != "open":
            raise ApiError(f"The Checkout Session is {session['status']}, not open.", status=409)
        facts = self.private[session["id"]]
        price = self.objects[facts["price"]]
        amount, currency = session["amount_total"], session["currency"]
        if outcome == "fail":
            intent = self.new_payment(
                amount=amount,
                currency=currency,
                customer=session["customer"],
                metadata=facts["payment_metadata"] if session["mode"] == "payment" else {},
                outcome="fail",
            )
            self.emit("payment_intent.payment_failed", intent)
            return 402, {
                "error": dict(DECLINE, payment_intent=copy.deepcopy(intent)),
                "session": copy.deepcopy(session),
            }

        email = session["customer_email"] or email
        customer_id = session["customer"]
        if customer_id is None:
            # Real Stripe makes a "guest" instead for one-off payments unless
            # customer_creation=always; the fake always makes a customer, as the app expects.
            customer_id = self.new_customer(email=email)["id"]
        email = email or self.objects[customer_id]["email"]
        details = {"address": None, "email": email, "name": None, "phone": None, "tax_exempt": "none", "tax_ids": []}
        payment_outcome = "succeed" if outcome == "succeed" else "processing"
        session.update(
            status="complete",
            customer=customer_id,
            customer_details=details,
            payment_status="paid" if outcome == "succeed" else "unpaid",
        )

        if session["mode"] == "payment":
            intent = self.new_payment(
                amount=amount,
                currency=currency,
                customer=customer_id,
                metadata=facts["payment_metadata"],
                outcome=payment_outcome,
                description=facts["payment_description"],
            )
            session["payment_intent"] = intent["id"]
            self.emit("checkout.session.completed", session)
            return 200, copy.deepcopy(session)

        start = now()
        subscription_id = new_id("sub")
        subscription = self.put(
            {
                "id": subscription_id,
                "object": "subscription",
                "application": None,
                "billing_cycle_anchor": start,
                "cancel_at": None,
                "cancel_at_period_end": False,
                "canceled_at": None,
                "cancellation_details": {"comment": None, "feedback": None, "reason": None},
                "collection_method": "charge_automatically",
                "created": start,
                "currency": currency,
                "customer": customer_id,
                "default_payment_method": None,
                "description": facts["subscription_description"],
                "discounts": [],
                "ended_at": None,
                "items": self._list_object(
                    [
                        {
                            "id": new_id("si"),
                            "object": "subscription_item",
                            "created": start,
                            "current_period_end": start + period_length(price),
                            "current_period_start": start,
                            "discounts": [],
                            "metadata": {},
                            "price": copy.deepcopy(price),
                            "quantity": 1,
                            "subscription": subscription_id,
                            "tax_rates": [],
                        }
                    ],
                    f"/v1/subscription_items?subscription={subscription_id}",
                ),
                "latest_invoice": None,
                "livemode": False,
                "metadata": dict(facts["subscription_metadata"]),
                "pause_collection": None,
                "pending_update": None,
                "schedule": None,
                "start_date": start,
                "status": "active",
                "trial_end": None,
                "trial_start": None,
            }
        )
        subscription["items"]["total_count"] = 1
        item = subscription["items"]["data"][0]
        invoice = self.new_invoice(
            subscription,
            "subscription_create",
            item["current_period_start"],
            item["current_period_end"],
            payment_outcome,
            (start, start),
        )
        subscription["latest_invoice"] = invoice["id"]
        session.update(subscription=subscription_id, invoice=invoice["id"])
        self.emit("customer.subscription.created", subscription)
        self.emit("checkout.session.completed", session)
        if outcome == "succeed":
            self.emit("invoice.paid", invoice)
        return 200, copy.deepcopy(session)

    def settle(self, session: dict, succeed: bool) -> dict:
        """A delayed payment (Bacs, SEPA) clears, or fails, days after the checkout completed."""
        facts = self.private[session["id"]]
        if session["status"] != "complete" or session["payment_status"] != "unpaid" or facts.get("settled"):
            raise ApiError(
                "Only a completed Checkout Session whose delayed payment is still processing can settle.", status=409
            )
        facts["settled"] = True
        if session["mode"] == "payment":
            intent = self.objects[session["payment_intent"]]
            if succeed:
                self.succeed_payment(intent)
                session["payment_status"] = "paid"
            else:
                self.fail_payment(intent)
        else:
            invoice = self.objects[session["invoice"]]
            subscription = self.objects[session["subscription"]]
            payment = self.objects[self.private[invoice["id"]]["payment"]]
            intent = self.objects[payment["payment"]["payment_intent"]]
            if succeed:
                self.succeed_payment(intent)
                self._mark_paid(invoice, payment)
                session["payment_status"] = "paid"
                self.emit("invoice.paid", invoice)
            else:
                self.fail_payment(intent)
                old = copy.deepcopy(subscription)
                subscription["status"] = "past_due"
                invoice["next_payment_attempt"] = now() + 3 * DAY
                self.emit("invoice.payment_failed", invoice)
                self.emit("customer.subscription.updated", subscription, previous_attributes(old, subscription))
        self.emit("checkout.session.async_payment_" + ("succeeded" if succeed else "failed"), session)
        return copy.deepcopy(session)

    # --- subscriptions and invoices ----------------------------------------------------------

    def new_invoice(
        self,
        subscription: dict,
        reason: str,
        line_start: int,
        line_end: int,
        outcome: str,
        invoice_period: tuple[int, int],
    ) -> dict:
        """An invoice for one period of the subscription's single item at its current price."""
        item = subscription["items"]["data"][0]
        price = item["price"]
        amount = price["unit_amount"] * item["quantity"]
        customer = self.objects[subscription["customer"]]
        product = self.objects.get(price["product"], {})
        created = now()
        invoice_id = new_id("in")
        intent = self.new_payment(
            amount=amount,
            currency=price["currency"],
            customer=customer["id"],
            metadata={},
            outcome=outcome,
            description="Subscription creation" if reason == "subscription_create" else "Subscription update",
        )
        payment = self.put(
            {
                "id": new_id("inpay"),
                "object": "invoice_payment",
                "amount_paid": None,
                "amount_requested": amount,
                "created": created,
                "currency": price["currency"],
                "invoice": invoice_id,
                "is_default": True,
                "livemode": False,
                "payment": {"type": "payment_intent", "payment_intent": intent["id"]},
                "status": "open",
                "status_transitions": {"canceled_at": None, "paid_at": None},
            }
        )
        number = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        customer["next_invoice_sequence"] += 1
        invoice = self.put(
            {
                "id": invoice_id,
                "object": "invoice",
                "account_country": "GB",
                "account_name": "Fake Stripe",
                "amount_due": amount,
                "amount_overpaid": 0,
                "amount_paid": 0,
                "amount_remaining": amount,
                "amount_shipping": 0,
                "attempt_count": 1,
                "attempted": True,
                "auto_advance": True,
                "automatic_tax": {"enabled": False, "liability": None, "status": None},
                "billing_reason": reason,
                "collection_method": "charge_automatically",
                "created": created,
                "currency": price["currency"],
                "customer": customer["id"],
                "customer_email": customer["email"],
                "customer_name": customer["name"],
                "description": None,
                "discounts": [],
                "due_date": None,
                "ending_balance": 0,
                "hosted_invoice_url": None,
                "invoice_pdf": None,
                "lines": {
                    **self._list_object(
                        [
                            {
                                "id": new_id("il"),
                                "object": "line_item",
                                "amount": amount,
                                "currency": price["currency"],
                                "description": f"1 × {product.get('name', 'Subscription')} (at "
                                f"{format_amount(price['unit_amount'], price['currency'])} / "
                                f"{price['recurring']['interval']})",
                                "discount_amounts": [],
                                "discountable": True,
                                "discounts": [],
                                "invoice": invoice_id,
                                "livemode": False,
                                "metadata": {},
                                "parent": {
                                    "type": "subscription_item_details",
                                    "invoice_item_details": None,
                                    "subscription_item_details": {
                                        "invoice_item": None,
                                        "proration": False,
                                        "proration_details": {"credited_items": None},
                                        "subscription": subscription["id"],
                                        "subscription_item": item["id"],
                                    },
                                },
                                "period": {"end": line_end, "start": line_start},
                                "pricing": {
                                    "type": "price_details",
                                    "unit_amount_decimal": str(price["unit_amount"]),
                                    "price_details": {"price": price["id"], "product": price["product"]},
                                },
                                "quantity": item["quantity"],
                                "taxes": [],
                            }
                        ],
                        f"/v1/invoices/{invoice_id}/lines",
                    ),
                    "total_count": 1,
                },
                "livemode": False,
                "metadata": {},
                "next_payment_attempt": None,
                "number": number,
                "parent": {
                    "type": "subscription_details",
                    "quote_details": None,
                    "subscription_details": {
                        "metadata": copy.deepcopy(subscription["metadata"]),
                        "subscription": subscription["id"],
                    },
                },
                "period_end": invoice_period[1],
                "period_start": invoice_period[0],
                "starting_balance": 0,
                "status": "open",
                "status_transitions": {
                    "finalized_at": created,
                    "marked_uncollectible_at": None,
                    "paid_at": None,
                    "voided_at": None,
                },
                "subtotal": amount,
                "total": amount,
                "total_excluding_tax": amount,
            },
            payment=payment["id"],
        )
        if outcome == "succeed":
            self._mark_paid(invoice, payment)
        elif outcome == "fail":
            invoice["next_payment_attempt"] = created + 3 * DAY
        return invoice

    @staticmethod
    def _mark_paid(invoice: dict, payment: dict) -> None:
        paid_at = now()
        invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0, next_payment_attempt=None)
        invoice["status_transitions"]["paid_at"] = paid_at
        payment.update(status="paid", amount_paid=invoice["amount_due"])
        payment["status_transitions"]["paid_at"] = paid_at

    @api("GET", "/v1/subscriptions", "_subscription_list_params:SubscriptionListParams")
    def list_subscriptions(self, p: dict) -> dict:
        status = p.get("status")

        def keep(sub: dict) -> bool:
            if p.get("price") and sub["items"]["data"][0]["price"]["id"] != p["price"]:
                return False
            if status == "all":
                return True
            return sub["status"] == status if status else sub["status"] != "canceled"

        return self.list_of("subscription", p, "/v1/subscriptions", ("customer",), keep)

    @api("GET", f"/v1/subscriptions/{ID}", "_subscription_retrieve_params:SubscriptionRetrieveParams")
    def retrieve_subscription(self, p: dict, subscription_id: str) -> dict:
        return copy.deepcopy(self.find("subscription", subscription_id))

    @api(
        "POST",
        f"/v1/subscriptions/{ID}",
        "_subscription_update_params:SubscriptionUpdateParams",
        {
            "cancel_at_period_end",
            "metadata",
            "proration_behavior",
            "proration_date",
            "items",
            "expand",
            "payment_behavior",
            "description",
            "cancellation_details",
        },
    )
    def update_subscription(self, p: dict, subscription_id: str) -> dict:
        subscription = self.find("subscription", subscription_id)
        if subscription["status"] == "canceled" and set(p) - {"metadata", "cancellation_details", "expand"}:
            raise ApiError("A canceled subscription can only update its cancellation_details and metadata.")
        item = subscription["items"]["data"][0]
        new_plan = new_price = None
        items = blank(p.get("items"))
        if items:
            if len(items) != 1:
                raise unmodelled("items", "more than one subscription item")
            change = items[0]
            for key in set(change) - {"id", "price", "price_data", "quantity"}:
                raise unmodelled(f"items[0][{key}]")
            if "id" not in change:
                raise unmodelled("items[0][id]", "adding a second item (items[0] without an id)")
            if change["id"] != item["id"]:
                raise no_such("subscription item", change["id"], "items[0][id]")
            if change.get("quantity", 1) != 1:
                raise unmodelled("items[0][quantity]", "a quantity other than 1")
            if "price" in change and "price_data" in change:
                raise ApiError(
                    "You may only specify one of these parameters: price, price_data.", param="items[0][price]"
                )
            if "price" in change:
                new_price = self.find("price", change["price"], "items[0][price]")
                if new_price["recurring"] is None:
                    raise ApiError(
                        "The price specified is set to `type=one_time` but this field only "
                        "accepts prices with `type=recurring`.",
                        param="items[0][price]",
                    )
            elif "price_data" in change:
                new_plan = self.check_price_data(change["price_data"], "items[0][price_data]", product_required=True)
            currency = new_price["currency"] if new_price else new_plan["currency"] if new_plan else None
            if currency is not None and currency != subscription["currency"]:
                raise ApiError(
                    f"The price's currency ({currency}) must match the subscription's ({subscription['currency']}).",
                    param="items[0]",
                )
        metadata = merge_metadata(subscription["metadata"], p.get("metadata"))
        details = blank(p.get("cancellation_details")) or {}

        old = copy.deepcopy(subscription)
        if new_plan is not None:
            new_price = self.new_price(new_plan)
        if new_price is not None:
            item["price"] = copy.deepcopy(new_price)
        if "cancel_at_period_end" in p and p["cancel_at_period_end"] != subscription["cancel_at_period_end"]:
            ending = p["cancel_at_period_end"]
            subscription.update(
                cancel_at_period_end=ending,
                cancel_at=item["current_period_end"] if ending else None,
                canceled_at=now() if ending else None,
            )
            subscription["cancellation_details"] = {
                **subscription["cancellation_details"],
                "reason": "cancellation_requested" if ending else None,
            }
        if details:
            subscription["cancellation_details"] = {
                **subscription["cancellation_details"],
                **{key: blank(value) for key, value in details.items()},
            }
        if "description" in p:
            subscription["description"] = blank(p["description"])
        subscription["metadata"] = metadata
        changed = previous_attributes(old, subscription)
        if changed:
            self.emit("customer.subscription.updated", subscription, changed)
        return copy.deepcopy(subscription)

    @api(
        "DELETE",
        f"/v1/subscriptions/{ID}",
        "_subscription_cancel_params:SubscriptionCancelParams",
        {"expand", "invoice_now", "prorate", "cancellation_details"},
    )
    def cancel_subscription(self, p: dict, subscription_id: str) -> dict:
        subscription = self.find("subscription", subscription_id)
        if subscription["status"] == "canceled":
            raise ApiError(f"The subscription {subscription_id} has already been canceled.")
        details = blank(p.get("cancellation_details")) or {}
        self._end(subscription, canceled_at=now())
        subscription["cancellation_details"] = {
            **subscription["cancellation_details"],
            **{key: blank(value) for key, value in details.items()},
        }
        self.emit("customer.subscription.deleted", subscription)
        return copy.deepcopy(subscription)

    @staticmethod
    def _end(subscription: dict, canceled_at: int) -> None:
        subscription.update(status="canceled", canceled_at=canceled_at, ended_at=now())
        subscription["cancellation_details"] = {
            **subscription["cancellation_details"],
            "reason": "cancellation_requested",
        }

    def renew(self, subscription: dict, succeed: bool) -> dict:
        """The next billing period starts: an invoice for it, paid or failed, and the items move on."""
        if subscription["status"] == "canceled":
            raise ApiError("A canceled subscription does not renew.", status=409)
        if subscription["cancel_at_period_end"]:
            raise ApiError(
                "This subscription cancels at the end of its period: end it with "
                "/_test/subscriptions/{id}/end instead of renewing it.",
                status=409,
            )
        item = subscription["items"]["data"][0]
        old = copy.deepcopy(subscription)
        start, end = item["current_period_end"], item["current_period_end"] + period_length(item["price"])
        invoice = self.new_invoice(
            subscription,
            "subscription_cycle",
            start,
            end,
            "succeed" if succeed else "fail",
            (item["current_period_start"], item["current_period_end"]),
        )
        item.update(current_period_start=start, current_period_end=end)
        subscription.update(latest_invoice=invoice["id"], status="active" if succeed else "past_due")
        self.emit("invoice.paid" if succeed else "invoice.payment_failed", invoice)
        self.emit("customer.subscription.updated", subscription, previous_attributes(old, subscription))
        return {"invoice": copy.deepcopy(invoice), "subscription": copy.deepcopy(subscription)}

    @api("GET", "/v1/invoices", "_invoice_list_params:InvoiceListParams")
    def list_invoices(self, p: dict) -> dict:
        def keep(invoice: dict) -> bool:
            return (
                not p.get("subscription")
                or invoice["parent"]["subscription_details"]["subscription"] == p["subscription"]
            )

        return self.list_of("invoice", p, "/v1/invoices", ("customer", "status"), keep)

    @api("GET", f"/v1/invoices/{ID}", "_invoice_retrieve_params:InvoiceRetrieveParams")
    def retrieve_invoice(self, p: dict, invoice_id: str) -> dict:
        return copy.deepcopy(self.find("invoice", invoice_id))

    @api("GET", "/v1/invoice_payments", "_invoice_payment_list_params:InvoicePaymentListParams")
    def list_invoice_payments(self, p: dict) -> dict:
        wanted = blank(p.get("payment")) or {}

        def keep(payment: dict) -> bool:
            return all(payment["payment"].get(key) == value for key, value in wanted.items())

        return self.list_of("invoice_payment", p, "/v1/invoice_payments", ("invoice", "status"), keep)

    @api("GET", f"/v1/invoice_payments/{ID}", "_invoice_payment_retrieve_params:InvoicePaymentRetrieveParams")
    def retrieve_invoice_payment(self, p: dict, payment_id: str) -> dict:
        return copy.deepcopy(self.find("invoice_payment", payment_id))

    # --- payments and refunds ----------------------------------------------------------------

    @api("GET", "/v1/payment_intents", "_payment_intent_list_params:PaymentIntentListParams")
    def list_payment_intents(self, p: dict) -> dict:
        return self.list_of("payment_intent", p, "/v1/payment_intents", ("customer",))

    @api("GET", f"/v1/payment_intents/{ID}", "_payment_intent_retrieve_params:PaymentIntentRetrieveParams")
    def retrieve_payment_intent(self, p: dict, intent_id: str) -> dict:
        return copy.deepcopy(self.find("payment_intent", intent_id))

    @api("GET", "/v1/charges", "_charge_list_params:ChargeListParams")
    def list_charges(self, p: dict) -> dict:
        return self.list_of("charge", p, "/v1/charges", ("customer", "payment_intent"))

    @api("GET", f"/v1/charges/{ID}", "_charge_retrieve_params:ChargeRetrieveParams")
    def retrieve_charge(self, p: dict, charge_id: str) -> dict:
        return copy.deepcopy(self.find("charge", charge_id))

    @api(
        "POST",
        "/v1/refunds",
        "_refund_create_params:RefundCreateParams",
        {"payment_intent", "charge", "amount", "reason", "metadata", "expand"},
    )
    def create_refund(self, p: dict) -> dict:
        intent_id, charge_id = blank(p.get("payment_intent")), blank(p.get("charge"))
        if intent_id is None and charge_id is None:
            raise ApiError(
                "One of the following params should be provided for this request: payment_intent or charge.",
                param="payment_intent",
                code="parameter_missing",
            )
        if intent_id is not None:
            intent = self.find("payment_intent", intent_id, "payment_intent")
            if intent["status"] != "succeeded" or not intent["latest_charge"]:
                raise ApiError(
                    f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                    param="payment_intent",
                )
            if charge_id is not None and charge_id != intent["latest_charge"]:
                raise ApiError(
                    f"The charge {charge_id} does not belong to the PaymentIntent {intent_id}.", param="charge"
                )
            charge_id = intent["latest_charge"]
        charge = self.find("charge", charge_id, "charge")
        left = charge["amount"] - charge["amount_refunded"]
        if left == 0:
            raise ApiError(
                f"Charge {charge_id} has already been refunded.", param="charge", code="charge_already_refunded"
            )
        amount = p.get("amount", left)
        if amount < 1:
            raise ApiError("Invalid positive integer", param="amount")
        if amount > left:
            raise ApiError(
                f"Refund amount ({format_amount(amount, charge['currency'])}) is greater than "
                f"unrefunded amount on charge ({format_amount(left, charge['currency'])})",
                param="amount",
                code="amount_too_large",
            )
        metadata = merge_metadata({}, p.get("metadata"))
        refund = self.put(
            {
                "id": new_id("re"),
                "object": "refund",
                "amount": amount,
                "balance_transaction": new_id("txn"),
                "charge": charge_id,
                "created": now(),
                "currency": charge["currency"],
                "destination_details": {
                    "type": "card",
                    "card": {
                        "reference_status": "pending",
                        "reference_type": "acquirer_reference_number",
                        "type": "refund",
                    },
                },
                "metadata": metadata,
                "payment_intent": charge["payment_intent"],
                "reason": p.get("reason"),
                "receipt_number": None,
                "source_transfer_reversal": None,
                "status": "succeeded",
                "transfer_reversal": None,
            }
        )
        old = copy.deepcopy(charge)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self.emit("charge.refunded", charge, previous_attributes(old, charge))
        self.emit("refund.created", refund)
        return copy.deepcopy(refund)

    @api("GET", "/v1/refunds", "_refund_list_params:RefundListParams")
    def list_refunds(self, p: dict) -> dict:
        return self.list_of("refund", p, "/v1/refunds", ("charge", "payment_intent"))

    @api("GET", f"/v1/refunds/{ID}", "_refund_retrieve_params:RefundRetrieveParams")
    def retrieve_refund(self, p: dict, refund_id: str) -> dict:
        return copy.deepcopy(self.find("refund", refund_id))

    # --- events ------------------------------------------------------------------------------

    @api("GET", "/v1/events", "_event_list_params:EventListParams")
    def list_events(self, p: dict) -> dict:
        patterns = [p["type"]] if p.get("type") else list(p.get("types") or [])

        def keep(event: dict) -> bool:
            return not patterns or any(fnmatch.fnmatchcase(event["type"], pattern) for pattern in patterns)

        return self.list_of("event", p, "/v1/events", (), keep, ids=list(self.event_ids))

    @api("GET", f"/v1/events/{ID}", "_event_retrieve_params:EventRetrieveParams")
    def retrieve_event(self, p: dict, event_id: str) -> dict:
        return copy.deepcopy(self.find("event", event_id))

    # --- test control ------------------------------------------------------------------------

    @control("POST", "/_test/webhook")
    def control_webhook(self, body: dict) -> tuple[int, dict]:
        self.webhook_url = body.get("url") or None
        if body.get("secret"):
            self.webhook_secret = body["secret"]
        return 200, {"url": self.webhook_url, "secret": self.webhook_secret}

    @control("POST", "/_test/reset")
    def control_reset(self, body: dict) -> tuple[int, dict]:
        self.reset()
        return 200, {"reset": True}

    @control("POST", f"/_test/sessions/{ID}/pay")
    def control_pay(self, body: dict, session_id: str) -> tuple[int, dict]:
        session = self.find("checkout.session", session_id)
        return self.complete(session, body.get("outcome", "succeed"), body.get("email"))

    @control("POST", f"/_test/sessions/{ID}/settle")
    def control_settle(self, body: dict, session_id: str) -> tuple[int, dict]:
        return 200, self.settle(self.find("checkout.session", session_id), bool(body.get("succeed", True)))

    @control("POST", f"/_test/subscriptions/{ID}/renew")
    def control_renew(self, body: dict, subscription_id: str) -> tuple[int, dict]:
        return 200, self.renew(self.find("subscription", subscription_id), bool(body.get("succeed", True)))

    @control("POST", f"/_test/subscriptions/{ID}/end")
    def control_end(self, body: dict, subscription_id: str) -> tuple[int, dict]:
        """The period ends after ``cancel_at_period_end``: Stripe cancels the subscription."""
        subscription = self.find("subscription", subscription_id)
        if subscription["status"] == "canceled":
            raise ApiError("The subscription has already ended.", status=409)
        self._end(subscription, canceled_at=subscription["canceled_at"] or now())
        self.emit("customer.subscription.deleted", subscription)
        return 200, copy.deepcopy(subscription)

    @control("GET", "/_test/events")
    def control_events(self, body: dict, query: dict | None = None) -> tuple[int, dict]:
        wanted = (query or {}).get("type")
        return 200, [
            dict(copy.deepcopy(self.objects[i]), deliveries=copy.deepcopy(self.deliveries[i]))
            for i in self.event_ids
            if not wanted or self.objects[i]["type"] == wanted
        ]

    @control("GET", "/_test/requests")
    def control_requests(self, body: dict, query: dict | None = None) -> tuple[int, dict]:
        return 200, copy.deepcopy(self.requests)

    @control("GET", "/_test/idle")
    def control_idle(self, body: dict, query: dict | None = None) -> tuple[int, dict]:
        with self.pending_changed:
            return 200, {"idle": self.pending == 0, "pending": self.pending}


def period_length(price: dict) -> int:
    recurring = price["recurring"]
    return INTERVAL_SECONDS[recurring["interval"]] * recurring.get("interval_count", 1)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Stripe does not follow a webhook endpoint's redirects: a 3xx is a failed delivery."""

    def redirect_request(self, *args, **kwargs):
        return None


# --- the payment page -------------------------------------------------------------------------

PAGE_STYLE = """
body{font-family:system-ui,sans-serif;background:#f6f8fa;color:#1a1f36;margin:0}
main{max-width:28rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;
box-shadow:0 1px 4px rgba(0,0,0,.15)}
h1{font-size:1.4rem;margin-top:0}.amount{font-size:2rem;font-weight:700;margin:.5rem 0 1.5rem}
label{display:block;font-weight:600;margin:1rem 0 .3rem}
input{font-size:1.1rem;padding:.6rem;width:100%;box-sizing:border-box;border:1px solid #6b7385;border-radius:4px}
button{margin-top:1.5rem;font-size:1.1rem;padding:.7rem 1.5rem;background:#4f3fd6;color:#fff;border:0;
border-radius:4px;cursor:pointer}
.error{color:#a4061f;font-weight:600}.note{color:#4a5162;font-size:.9rem}a{color:#3b2db3}
"""


def page(title: str, body: str) -> bytes:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    ).encode()


def payment_page(state: State, session: dict, error: str | None = None, email: str | None = None) -> bytes:
    facts = state.private[session["id"]]
    price = state.objects[facts["price"]]
    product = state.objects.get(price["product"], {})
    name = product.get("name") or "Your payment"
    amount = format_amount(session["amount_total"], session["currency"])
    recurring = price["recurring"]
    every = ""
    if recurring:
        count = recurring.get("interval_count", 1)
        every = f"per {recurring['interval']}" if count == 1 else f"every {count} {recurring['interval']}s"
    known_email = session["customer_email"] or (
        session["customer"] and state.objects.get(session["customer"], {}).get("email")
    )
    described = ' aria-invalid="true" aria-describedby="card-error"' if error else ""
    email_field = (
        ""
        if known_email
        else (
            '<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="email" '
            f'required value="{html.escape(email or "customer@example.com")}">'
        )
    )
    body = (
        f"<h1>{html.escape(name)}</h1>"
        f'<p class="amount">{html.escape(amount)}{" <span>" + html.escape(every) + "</span>" if every else ""}</p>'
        + (f'<p class="error" id="card-error" role="alert">{html.escape(error)}</p>' if error else "")
        + f'<form method="post" action="/pay/{html.escape(session["id"])}">{email_field}'
        '<label for="card_number">Card number</label>'
        '<input id="card_number" name="card_number" inputmode="numeric" autocomplete="cc-number" '
        f'value="4242 4242 4242 4242"{described}>'
        '<button type="submit">Pay</button></form>'
        f'<p><a href="{html.escape(session["cancel_url"])}">Cancel</a></p>'
        '<p class="note">Test mode: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined.</p>'
    )
    return page(f"Pay {amount} for {name}", body)


# --- HTTP ---------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeStripe/1.0"
    # Headers and body leave in one write (flushed after each request), without Nagle's delay:
    # otherwise every keep-alive request waits ~40 ms for a delayed ACK.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server: FakeStripeServer

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("fake-stripe: %s\n" % (format % args))

    def respond(
        self, status: int, body: bytes, content_type: str = "application/json", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def respond_json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self.respond(status, json.dumps(value).encode(), "application/json", headers)

    def dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            if url.path.startswith("/v1/"):
                self.handle_api(method, url.path, url.query, body)
            elif url.path.startswith("/_test/"):
                self.handle_control(method, url.path, url.query, body)
            elif url.path.startswith("/pay/"):
                self.handle_page(method, url.path[len("/pay/") :], body)
            elif url.path == "/":
                self.respond_json(200, {"fake_stripe": True, "api_version": API_VERSION})
            else:
                self.respond_json(
                    404,
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "message": f"Unrecognized request URL ({method}: {url.path}).",
                        }
                    },
                )
        except Exception as error:  # a bug in the fake: say so loudly, as a 500
            import traceback

            traceback.print_exc()
            self.respond_json(500, {"error": {"type": "api_error", "message": f"Fake Stripe crashed: {error!r}"}})

    def authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        key = ""
        if header.startswith("Bearer "):
            key = header[len("Bearer ") :].strip()
        elif header.startswith("Basic "):
            try:
                key = base64.b64decode(header[len("Basic ") :]).decode().split(":")[0]
            except Exception:
                key = ""
        return key.startswith("sk_test_")

    def handle_api(self, method: str, path: str, query: str, body: bytes) -> None:
        state = self.server.state
        request_id = new_id("req", 14)
        key = self.headers.get("Idempotency-Key") if method == "POST" else None
        text = query if method in ("GET", "DELETE") else body.decode("utf-8", "replace")
        raw = decode_pairs(urllib.parse.parse_qsl(text, keep_blank_values=True))
        headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        with state.lock:
            entry = {"method": method, "path": path, "params": listify(raw), "idempotency_key": key, "status": None}
            state.requests.append(entry)
            if not self.authorised():
                entry["status"] = 401
                return self.respond_json(
                    401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}, headers
                )
            if key and key in state.idempotency:
                stored = state.idempotency[key]
                if (stored["method"], stored["path"], stored["raw"]) != (method, path, raw):
                    error = ApiError(
                        f"Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key}' if you "
                        "meant to execute a different request.",
                        type="idempotency_error",
                        code="idempotency_key_in_use",
                    )
                    entry["status"] = 400
                    return self.respond_json(400, error.body(), headers)
                entry["status"] = stored["status"]
                return self.respond(
                    stored["status"],
                    stored["body"],
                    "application/json",
                    {**headers, "Idempotent-Replayed": "true", "Original-Request": stored["request_id"]},
                )
            status, result = self.run_api(state, method, path, raw, entry, request_id, key)
            encoded = json.dumps(result).encode()
            entry["status"] = status
            if key and status < 400:
                state.idempotency[key] = {
                    "method": method,
                    "path": path,
                    "raw": raw,
                    "status": status,
                    "body": encoded,
                    "request_id": request_id,
                }
            self.respond(status, encoded, "application/json", {**headers, "Idempotency-Key": key} if key else headers)

    @staticmethod
    def run_api(
        state: State, method: str, path: str, raw: dict, entry: dict, request_id: str, key: str | None
    ) -> tuple[int, Any]:
        matched_path = False
        for route_method, pattern, name, params_type, supported in API_ROUTES:
            match = pattern.match(path)
            if not match:
                continue
            matched_path = True
            if route_method != method:
                continue
            try:
                params = check_params(raw, params_type)
                entry["params"] = params
                if supported is not None:
                    for param in params:
                        if param not in supported:
                            raise unmodelled(param)
                state.current_request = {"id": request_id, "idempotency_key": key}
                result = getattr(state, name)(params, *match.groups())
                return 200, state.expand(result, params.get("expand"))
            except ApiError as error:
                return error.status, error.body()
            finally:
                state.current_request = None
        message = f"Unrecognized request URL ({method}: {path})."
        if matched_path:
            message += " This path exists for another HTTP method."
        return 404, ApiError(message, status=404).body()

    def handle_control(self, method: str, path: str, query: str, body: bytes) -> None:
        state = self.server.state
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return self.respond_json(400, {"error": {"type": "invalid_request_error", "message": "Body is not JSON"}})
        if path == "/_test/send" and method == "POST":
            return self.control_send(state, payload)
        match = re.fullmatch(r"/_test/events/([A-Za-z0-9_]+)/resend", path)
        if match and method == "POST":
            return self.control_resend(state, match.group(1), payload)
        for route_method, pattern, name in CONTROL_ROUTES:
            found = pattern.match(path)
            if found and route_method == method:
                with state.lock:
                    try:
                        if method == "GET":
                            query_params = dict(urllib.parse.parse_qsl(query))
                            status, result = getattr(state, name)(payload, query_params)
                        else:
                            status, result = getattr(state, name)(payload, *found.groups())
                    except ApiError as error:
                        status, result = error.status, error.body()
                return self.respond_json(status, result)
        return self.respond_json(
            404, {"error": {"type": "invalid_request_error", "message": f"No control endpoint {method} {path}"}}
        )

    def control_send(self, state: State, payload: dict) -> None:
        """A new event around any object (tests of odd or hostile payloads), delivered in turn."""
        if not isinstance(payload.get("type"), str) or not isinstance(payload.get("object"), dict):
            return self.respond_json(
                400, {"error": {"type": "invalid_request_error", "message": 'Send {"type": str, "object": {...}}'}}
            )
        with state.lock:
            event = state.emit(payload["type"], payload["object"], payload.get("previous_attributes"), deliver=False)
            job = state.enqueue(event["id"]) if state.webhook_url else None
        if job is not None:
            job.done.wait(DELIVERY_TIMEOUT * 3)
        statuses = [job.result["status"]] if job is not None and job.result else []
        self.respond_json(200, {"event": event, "statuses": statuses})

    def control_resend(self, state: State, event_id: str, payload: dict) -> None:
        """Stripe may deliver one event more than once, even at the same moment: this does so on
        purpose, with the same id and body, so the app's duplicate handling is tested."""
        with state.lock:
            if event_id not in state.payloads:
                return self.respond_json(404, no_such("event", event_id, "id", 404).body())
            if not state.webhook_url:
                return self.respond_json(
                    409, {"error": {"type": "invalid_request_error", "message": "No webhook URL is set."}}
                )
        times = int(payload.get("times", 5))
        concurrent = bool(payload.get("concurrent", True))
        state.wait_idle(DELIVERY_TIMEOUT * 3)  # the first deliveries go first
        with state.pending_changed:
            state.pending += times
        results: list[dict | None] = [None] * times
        try:
            if concurrent and times > 1:
                barrier = threading.Barrier(times)

                def one(index: int) -> None:
                    results[index] = state.deliver(event_id, barrier)

                threads = [threading.Thread(target=one, args=(index,)) for index in range(times)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            else:
                for index in range(times):
                    results[index] = state.deliver(event_id)
        finally:
            with state.pending_changed:
                state.pending -= times
                state.pending_changed.notify_all()
        self.respond_json(200, {"statuses": [result["status"] if result else None for result in results]})

    def handle_page(self, method: str, session_id: str, body: bytes) -> None:
        state = self.server.state
        with state.lock:
            session = state.objects.get(session_id)
            if session is None or session.get("object") != "checkout.session":
                return self.respond(
                    404, page("Not found", "<h1>This payment page does not exist</h1>"), "text/html; charset=utf-8"
                )
            if session["status"] == "open" and session["expires_at"] <= now():
                state._expire(session)
            if session["status"] == "expired":
                return self.respond(
                    410,
                    page(
                        "Payment page expired",
                        "<h1>This payment page has expired</h1>"
                        f'<p><a href="{html.escape(session["cancel_url"])}">Go back</a></p>',
                    ),
                    "text/html; charset=utf-8",
                )
            if session["status"] == "complete":
                return self.respond(
                    409, page("Already paid", "<h1>This payment is already complete</h1>"), "text/html; charset=utf-8"
                )
            if method == "GET":
                return self.respond(200, payment_page(state, session), "text/html; charset=utf-8")
            if method != "POST":
                return self.respond(405, page("Not allowed", "<h1>Method not allowed</h1>"), "text/html; charset=utf-8")
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            card = re.sub(r"[\s-]", "", form.get("card_number", [""])[0])
            email = (form.get("email") or [""])[0].strip() or None
            if card == CARD_SUCCEEDS:
                state.complete(session, "succeed", email)
                location = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
                return self.respond(303, b"", "text/plain", {"Location": location})
            if card == CARD_DECLINED:
                state.complete(session, "fail")
                return self.respond(
                    402, payment_page(state, session, DECLINE["message"], email), "text/html; charset=utf-8"
                )
            return self.respond(
                400, payment_page(state, session, "Your card number is invalid.", email), "text/html; charset=utf-8"
            )


class FakeStripeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    state: State


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stateful stand-in for the Stripe API, for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--webhook-secret", default=DEFAULT_WEBHOOK_SECRET)
    args = parser.parse_args(argv)
    server = FakeStripeServer((args.host, args.port), Handler)
    base_url = f"http://{args.host}:{server.server_address[1]}"
    server.state = State(base_url, args.webhook_url, args.webhook_secret)
    print(f"ready {base_url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
