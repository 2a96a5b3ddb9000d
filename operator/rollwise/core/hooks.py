"""The hooks room: lifecycle webhooks and notifications, as entries of `status.webhooks`.

Every call is first an entry in status (its id is the payload's checksum), written in the same
status patch as the transition that caused it; the controller sends it only after that patch
(`Plan.calls`), off the pass's thread, and hands the outcome back to the next pass
(`Observed.hook_outcomes`), which folds it into the entry. So a crash loses nothing that was
recorded, and re-sends at most what was not yet recorded as answered: delivery is at least
once, with the same checksum every time so a receiver can drop duplicates.

Blocking hooks (confirmRollout, preRollout, confirmPromotion) are asked by the room that waits
for them (`hook_gate`); the others are derived from the pass's transitions in one place
(`announce`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from rollwise.api.durations import parse_duration
from rollwise.api.headers import split_headers
from rollwise.api.hooks import PLACEHOLDER, NotificationReceiver, Transition, Webhook, WebhookType
from rollwise.api.service_status import (
    WEBHOOKS_LIMIT,
    DeliveryResult,
    HistoryEntry,
    Phase,
    ServiceStatus,
    WebhookStatus,
)
from rollwise.core.model import HookCall
from rollwise.core.passes import Pass, seconds
from rollwise.core.reasons import Reason

NOTIFICATION = "notification"
# Retries of a failed attempt: 1 s, 2 s, 4 s, ... capped. A confirm* hook is asked again on the
# same schedule until it answers 2xx, capped lower: a person saying yes should not wait long.
RETRY_BASE_S = 1.0
RETRY_CAP_S = 30.0
CONFIRM_RETRY_CAP_S = 10.0
MESSAGE_LIMIT = 512

# History reasons that are lifecycle transitions (the rest are told in their messages).
_TRANSITIONS = {
    Reason.ROLLOUT_STARTED: Transition.STARTED,
    Reason.PROMOTED: Transition.PROMOTED,
    Reason.TRAFFIC_DRAINED: Transition.ROLLING_BACK,
    Reason.ROLLED_BACK: Transition.ROLLED_BACK,
    Reason.MIGRATION_FAILED: Transition.MIGRATION_FAILED,
}
# Which non-blocking webhook types are sent for which transitions (`event`: all of them).
_HOOK_TRANSITIONS = {
    WebhookType.POST_ROLLOUT: {Transition.PROMOTED},
    WebhookType.ROLLBACK: {Transition.ROLLING_BACK},
    WebhookType.EVENT: set(Transition),
}


@dataclass(frozen=True)
class HookGate:
    """Where the blocking hooks of one type stand for a revision."""

    passed: bool
    failed: bool = False
    message: str = ""


def webhooks_of(p: Pass) -> list[Webhook]:
    return list(p.spec.strategy.canary.webhooks or ())


def receivers_of(p: Pass) -> list[NotificationReceiver]:
    return list(p.spec.notifications.receivers) if p.spec.notifications else []


def checksum(p: Pass, entry: dict[str, Any]) -> str:
    """sha256 of the canonical identity of one delivery: what it tells, to whom, and when the
    pass that decided it ran. It never changes between attempts."""
    identity = {
        "namespace": p.observed.namespace,
        "service": p.observed.name,
        "revision": entry["revision"],
        "type": entry["type"],
        "name": entry["name"],
        "transition": entry.get("transition"),
        "step": entry.get("step"),
        "createdAt": p.now.isoformat(),
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _new_entry(
    p: Pass,
    *,
    name: str,
    type_: str,
    revision: str,
    transition: str | None,
    step: int | None,
    message: str | None,
    phase: Phase | None = None,
) -> WebhookStatus:
    fields: dict[str, Any] = {
        "name": name,
        "type": type_,
        "revision": revision,
        "transition": transition,
        "step": step,
    }
    return WebhookStatus(
        id=checksum(p, fields),
        name=name,
        type=type_,
        transition=transition,
        revision=revision,
        version=_version_of(p, revision),
        phase=(phase or p.status.phase).value,
        step=step,
        weight=p.status.canary_weight,
        message=(message or "")[:MESSAGE_LIMIT] or None,
        created_at=p.now,
    )


def _version_of(p: Pass, revision: str) -> str:
    for rev in (p.status.canary, p.status.stable):
        if rev is not None and rev.revision == revision:
            return rev.version
    return p.spec.resolved_version() if p.spec.template is not None else ""


def _add(p: Pass, entry: WebhookStatus) -> None:
    p.set(webhooks=[*p.status.webhooks, entry])


def _replace(p: Pass, entry: WebhookStatus) -> None:
    p.set(webhooks=[entry if e.id == entry.id else e for e in p.status.webhooks])


# ---------------------------------------------------------------- blocking hooks


def hook_gate(p: Pass, hook_type: WebhookType, revision: str, phase: Phase) -> HookGate:
    """Ask every webhook of this blocking type for `revision` (once; the entry is then retried
    until it is decided) and say whether the rollout may go on. confirm* hooks hold on
    anything but 2xx; preRollout fails after maxAttempts failed calls. `phase` is what the
    payload tells: the phase the rollout waits in."""
    hooks = [h for h in webhooks_of(p) if h.type is hook_type]
    waiting: list[str] = []
    for hook in hooks:
        entry = _blocking_entry(p, hook, revision)
        if entry is None:
            entry = _new_entry(
                p,
                name=hook.name,
                type_=hook.type.value,
                revision=revision,
                transition=None,
                step=p.status.current_step_index,
                message=f"{hook.type.value} of {revision}",
                phase=phase,
            )
            _add(p, entry)
        if entry.result is DeliveryResult.SUCCEEDED:
            continue
        if entry.result is DeliveryResult.FAILED:
            return HookGate(
                passed=False,
                failed=True,
                message=f"webhook {hook.name} ({hook.type.value}) failed "
                f"{entry.attempts} times, last: {_answer(entry)}",
            )
        last = f", last: {_answer(entry)}" if entry.attempts else ""
        waiting.append(f"{hook.name} ({entry.attempts} attempts{last})")
    if waiting:
        return HookGate(
            passed=False, message=f"waiting for {hook_type.value} webhook {'; '.join(waiting)}"
        )
    return HookGate(passed=True)


def _blocking_entry(p: Pass, hook: Webhook, revision: str) -> WebhookStatus | None:
    for entry in p.status.webhooks:
        if (
            entry.name == hook.name
            and entry.type == hook.type.value
            and entry.revision == revision
            and entry.transition is None
        ):
            return entry
    return None


def forget_blocking(p: Pass, revision: str) -> None:
    """A rollout of `revision` starts afresh (a retry, or it returns after being superseded):
    its confirm and preRollout hooks are asked again, with new checksums."""
    kept = [
        e
        for e in p.status.webhooks
        if not (e.transition is None and e.revision == revision and e.type != NOTIFICATION)
    ]
    if len(kept) != len(p.status.webhooks):
        p.set(webhooks=kept)


def _answer(entry: WebhookStatus) -> str:
    if entry.code is not None:
        return f"HTTP {entry.code}"
    return entry.error or "no answer yet"


# ---------------------------------------------------------------- transitions


def transitions(p: Pass, before: ServiceStatus) -> list[tuple[Transition, HistoryEntry]]:
    """The lifecycle transitions this pass made, from the history entries it added and the phase
    it moved to: the one place they are derived, for notifications and webhooks alike."""
    steps = len(p.spec.strategy.canary.steps)
    new = [h for h in p.status.history if h.at == p.now and h not in before.history]
    out: list[tuple[Transition, HistoryEntry]] = []
    for entry in new:
        transition = _TRANSITIONS.get(entry.event)  # type: ignore[call-overload]
        if transition is Transition.ROLLING_BACK and p.status.abort is not None:
            # The drain's own message says what happens; the receiver wants to know why.
            abort = p.status.abort
            entry = entry.model_copy(update={"message": f"{abort.reason}: {abort.message}"})
        if transition is not None:
            out.append((transition, entry))
        if entry.event == Reason.ROLLOUT_STARTED:
            out.append((Transition.STEP_STARTED, entry.model_copy(update={"step": 0})))
        elif (
            entry.event == Reason.STEP_COMPLETED
            and entry.step is not None
            and entry.step + 1 < steps
        ):
            out.append((Transition.STEP_STARTED, entry.model_copy(update={"step": entry.step + 1})))
    canary = p.status.canary
    if p.status.phase is Phase.PAUSED and before.phase is not Phase.PAUSED and canary:
        out.append(
            (
                Transition.PAUSED,
                HistoryEntry(
                    at=p.now,
                    event=Phase.PAUSED.value,
                    revision=canary.revision,
                    step=p.status.current_step_index,
                    weight=p.status.canary_weight,
                    message=p.status.message,
                ),
            )
        )
    return out


def announce(p: Pass, before: ServiceStatus) -> None:
    """Record a delivery for every transition of this pass that a receiver or a non-blocking
    webhook asked for; once per (revision, transition, step, name)."""
    found = transitions(p, before)
    if not found:
        return
    targets: list[tuple[str, str, set[Transition]]] = [
        (h.name, h.type.value, _HOOK_TRANSITIONS[h.type])
        for h in webhooks_of(p)
        if h.type in _HOOK_TRANSITIONS
    ]
    if p.spec.notifications is not None:
        wanted = set(p.spec.notifications.transitions)
        targets += [(r.name, NOTIFICATION, wanted) for r in receivers_of(p)]
    seen = {(e.name, e.type, e.revision, e.transition, e.step) for e in p.status.webhooks}
    for transition, entry in found:
        revision = entry.revision or (p.status.canary.revision if p.status.canary else "")
        for name, type_, on in targets:
            key = (name, type_, revision, transition.value, entry.step)
            if transition not in on or key in seen:
                continue
            seen.add(key)
            _add(
                p,
                _new_entry(
                    p,
                    name=name,
                    type_=type_,
                    revision=revision,
                    transition=transition.value,
                    step=entry.step,
                    message=entry.message,
                ),
            )


# ---------------------------------------------------------------- outcomes and calls


def fold_outcomes(p: Pass) -> None:
    """Record the attempts that finished since the last pass; a delivery that used its last
    attempt is Failed, with a Warning Event."""
    for outcome in p.observed.hook_outcomes:
        entry = next((e for e in p.status.webhooks if e.id == outcome.id), None)
        if (
            entry is None
            or entry.result is not DeliveryResult.PENDING
            or entry.attempts + 1 != outcome.attempt
        ):
            continue  # already recorded (a pass whose status write was not yet seen)
        attempts = outcome.attempt
        update: dict[str, Any] = {
            "attempts": attempts,
            "code": outcome.code,
            "error": (outcome.error or "")[:MESSAGE_LIMIT] or None,
            "last_attempt_at": outcome.at,
            "next_attempt_at": None,
        }
        if outcome.ok:
            update["result"] = DeliveryResult.SUCCEEDED
        elif attempts >= _max_attempts(p, entry):
            update["result"] = DeliveryResult.FAILED
        else:
            cap = CONFIRM_RETRY_CAP_S if _confirms(entry) else RETRY_CAP_S
            delay = min(cap, RETRY_BASE_S * 2 ** (attempts - 1))
            update["next_attempt_at"] = outcome.at + seconds(delay)
        done = entry.model_copy(update=update)
        _replace(p, done)
        if done.result is DeliveryResult.FAILED and done.type != WebhookType.PRE_ROLLOUT:
            # preRollout's failure is the rollback's reason: its abort Event tells it.
            is_note = done.type == NOTIFICATION
            p.notice(
                Reason.NOTIFICATION_FAILED if is_note else Reason.WEBHOOK_FAILED,
                f"{'notification' if is_note else 'webhook'} {done.name} "
                f"({done.transition or done.type}, {done.revision}) not delivered after "
                f"{attempts} attempts: {_answer(done)}",
                warning=True,
            )


def _confirms(entry: WebhookStatus) -> bool:
    return entry.type in (WebhookType.CONFIRM_ROLLOUT, WebhookType.CONFIRM_PROMOTION)


def _max_attempts(p: Pass, entry: WebhookStatus) -> int:
    if _confirms(entry):
        return 2**31  # confirm* hooks hold until they answer 2xx
    target = _target(p, entry)
    return target.max_attempts if target is not None else 1


def _target(p: Pass, entry: WebhookStatus) -> Webhook | NotificationReceiver | None:
    if entry.type == NOTIFICATION:
        return next((r for r in receivers_of(p) if r.name == entry.name), None)
    return next(
        (h for h in webhooks_of(p) if h.name == entry.name and h.type.value == entry.type), None
    )


def schedule_calls(p: Pass) -> None:
    """The attempts due now become calls (sent after this pass's status write); the next due
    one wakes the service. Deliveries whose webhook or receiver left the spec are dropped."""
    if not p.status.webhooks:
        return  # the common case: nothing to send, and no status copy made for it
    kept: list[WebhookStatus] = []
    for entry in p.status.webhooks:
        target = _target(p, entry)
        if target is None:
            continue
        kept.append(entry)
        if entry.result is not DeliveryResult.PENDING:
            continue
        if entry.next_attempt_at is not None and entry.next_attempt_at > p.now:
            p.wake_at(entry.next_attempt_at)
            continue
        attempt = entry.attempts + 1
        body, content_type = render(p, entry, target)
        headers, secret_headers = split_headers(target.headers)
        p.calls.append(
            HookCall(
                id=entry.id,
                attempt=attempt,
                name=entry.name,
                type=entry.type,
                url=target.url or "",
                url_secret=(
                    None
                    if target.url_secret_ref is None
                    else (target.url_secret_ref.name, target.url_secret_ref.key)
                ),
                body=body,
                content_type=content_type,
                timeout_s=parse_duration(target.timeout),
                last_attempt=attempt >= _max_attempts(p, entry),
                headers=headers,
                secret_headers=secret_headers,
            )
        )
    bounded = _bounded(kept)
    if bounded != p.status.webhooks:
        p.set(webhooks=bounded)


def _bounded(entries: list[WebhookStatus]) -> list[WebhookStatus]:
    """At most WEBHOOKS_LIMIT entries: the oldest finished deliveries go first, then (a flood
    of transitions no receiver keeps up with) the oldest pending ones."""
    if len(entries) <= WEBHOOKS_LIMIT:
        return entries
    finished = [e for e in entries if e.result is not DeliveryResult.PENDING]
    drop = {id(e) for e in finished[: len(entries) - WEBHOOKS_LIMIT]}
    kept = [e for e in entries if id(e) not in drop]
    return kept[len(kept) - WEBHOOKS_LIMIT :] if len(kept) > WEBHOOKS_LIMIT else kept


# ---------------------------------------------------------------- payloads


def payload(p: Pass, entry: WebhookStatus) -> dict[str, Any]:
    """The JSON every webhook receives; notifications use it too (or a template of it)."""
    target = _target(p, entry)
    metadata = target.metadata if isinstance(target, Webhook) else {}
    return {
        "service": p.observed.name,
        "namespace": p.observed.namespace,
        "revision": entry.revision,
        "version": entry.version,
        "phase": entry.phase,
        "step": entry.step,
        "weight": entry.weight,
        "type": entry.type,
        "name": entry.name,
        "transition": entry.transition,
        "message": entry.message,
        "metadata": dict(metadata),
        "createdAt": entry.created_at.isoformat(),
        "checksum": entry.id,
    }


def render(
    p: Pass, entry: WebhookStatus, target: Webhook | NotificationReceiver
) -> tuple[str, str]:
    """The request body and its content type."""
    data = payload(p, entry)
    if isinstance(target, NotificationReceiver) and target.slack is not None:
        slack: dict[str, Any] = {"text": slack_text(data)}
        if target.slack.channel:
            slack["channel"] = target.slack.channel
        return json.dumps(slack), "application/json"
    receiver = target.webhook if isinstance(target, NotificationReceiver) else None
    template = receiver.template if receiver is not None else None
    if template is not None:
        body = fill_template(template, data)
        return body, "application/json" if _is_json(body) else "text/plain; charset=utf-8"
    return json.dumps(data, sort_keys=True), "application/json"


def slack_text(data: dict[str, Any]) -> str:
    step = f" (step {data['step'] + 1})" if data.get("step") is not None else ""
    return (
        f"*{data['namespace']}/{data['service']}* {data['transition'] or data['type']}{step}: "
        f"version {data['version']} ({data['revision']})"
        + (f" — {data['message']}" if data.get("message") else "")
    )


def fill_template(template: str, data: dict[str, Any]) -> str:
    """`{{field}}` replaced by the field's value, JSON-string escaped without the quotes: a
    value can never end a JSON string it was placed in, nor add structure around it."""

    def value(match: re.Match[str]) -> str:
        found = data.get(match.group(1))
        return json.dumps("" if found is None else str(found))[1:-1]

    return PLACEHOLDER.sub(value, template)


def _is_json(body: str) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True
