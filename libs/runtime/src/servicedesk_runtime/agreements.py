"""A consumer's own copy of agreement terms, learnt from `AgreementRegistered`.

Agreements and tickets arrive on different topics, so a ticket may name an agreement this
service has not seen yet. Such tickets are parked on the copy and released when the terms
arrive, instead of being decided with terms that do not exist.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, TypeVar

from eventsourcing.domain import Aggregate, event

from servicedesk_contracts.envelope import STORED
from servicedesk_contracts.messages import AgreementRegistered, AgreementTerms
from servicedesk_runtime.store import UnitOfWork

A = TypeVar("A", bound=Aggregate)


class AgreementCopy(Aggregate):
    @staticmethod
    def create_id(agreement_id: uuid.UUID) -> uuid.UUID:
        return agreement_id

    @event("Known")
    def __init__(self, agreement_id: uuid.UUID) -> None:
        self.terms_json: dict[str, Any] | None = None
        self.parked: list[uuid.UUID] = []

    @property
    def terms(self) -> AgreementTerms | None:
        if self.terms_json is None:
            return None
        return _validated(self.id, self.terms_json)

    @event("TermsRecorded")
    def record_terms(self, terms_json: dict[str, Any]) -> None:
        self.terms_json = terms_json

    @event("Parked")
    def park(self, subject_id: uuid.UUID) -> None:
        self.parked.append(subject_id)

    def release_parked(self) -> list[uuid.UUID]:
        released = list(self.parked)
        if released:
            self._released()
        return released

    @event("Released")
    def _released(self) -> None:
        self.parked = []


_VALIDATED: OrderedDict[uuid.UUID, tuple[dict[str, Any], AgreementTerms]] = OrderedDict()
_VALIDATED_LOCK = threading.Lock()


def _validated(agreement_id: uuid.UUID, terms_json: dict[str, Any]) -> AgreementTerms:
    """The terms as a model, validated once per recorded version rather than once per
    ticket (validation of a whole agreement costs more than applying the ticket)."""
    with _VALIDATED_LOCK:
        known = _VALIDATED.get(agreement_id)
    if known is not None and known[0] is terms_json:
        return known[1]
    terms = AgreementTerms.model_validate(terms_json, context=STORED)
    with _VALIDATED_LOCK:
        _VALIDATED[agreement_id] = (terms_json, terms)
        _VALIDATED.move_to_end(agreement_id)
        while len(_VALIDATED) > 1000:
            _VALIDATED.popitem(last=False)
    return terms


def agreement_copy(uow: UnitOfWork, agreement_id: uuid.UUID) -> AgreementCopy:
    """The copy of an agreement in this unit of work, made if this service has none yet."""
    return uow.get_or_create(AgreementCopy, agreement_id=agreement_id)


def known_terms(uow: UnitOfWork, agreement_id: uuid.UUID) -> AgreementTerms | None:
    """The agreement's terms if this service has learnt them (reading makes no copy)."""
    agreement = uow.get(agreement_id, AgreementCopy)
    return agreement.terms if agreement is not None else None


def terms_or_park(
    uow: UnitOfWork, agreement_id: uuid.UUID, waiting: Aggregate
) -> AgreementTerms | None:
    """The agreement's terms; or None, with `waiting` parked until they arrive."""
    agreement = agreement_copy(uow, agreement_id)
    terms = agreement.terms
    if terms is None:
        agreement.park(waiting.id)
    return terms


def keep_terms(uow: UnitOfWork, registered: AgreementRegistered) -> AgreementTerms:
    """Records an agreement's (new) terms, for a service where nothing waits for them."""
    agreement_copy(uow, registered.subject_id).record_terms(registered.data.model_dump(mode="json"))
    return registered.data


def learn_terms(uow: UnitOfWork, registered: AgreementRegistered, kind: type[A]) -> Iterator[A]:
    """Records an agreement's (new) terms and yields each aggregate parked waiting for it."""
    agreement = agreement_copy(uow, registered.subject_id)
    agreement.record_terms(registered.data.model_dump(mode="json"))
    for parked_id in agreement.release_parked():
        parked = uow.get(parked_id, kind)
        if parked is not None:
            uow.add(parked)
            yield parked
