"""Recording metadata (RFC 7865, ``application/rs-metadata+xml``) read safely and kept current.

``parse_metadata`` reads what an SRC says about a recording session: the data mode, groups,
communication sessions (sipSessionID, start/stop), participants (nameID AORs and names),
streams (their SDP labels), which participant sends and receives which stream, and the
session/recording associations. ``merge`` applies a ``partial`` update to what is known (a
``complete`` one replaces it). ``RecordingMetadata`` answers what the call needs: the
participant behind an m-line's label, and which streams nobody sends any more (paused).

The XML is parsed the way the API parses requests (api/protocol/xmlcodec.py; drivers may not
import the API, so the setup is repeated here): no DTD, no entities, no network, no huge
trees, DOCTYPE and ENTITY declarations refused before parsing, the size and the element count
bounded. Readers are lenient where SRCs differ: element names are compared without case
(``dataMode``/``datamode``), the pre-RFC namespace and none are read too, and the older
forms (``id=``/``session=`` attributes, ``<aor>`` and ``<send>`` inside ``<participant>``)
that some SBCs still send are understood. Extension elements are ignored.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from recorder import safexml
from recorder.drivers.siprec.errors import ProtocolError

logger = logging.getLogger(__name__)

NAMESPACE = "urn:ietf:params:xml:ns:recording:1"
_NAMESPACES = (NAMESPACE, "urn:ietf:params:xml:ns:recording", None)
MAX_METADATA_BYTES = 128 * 1024
MAX_ELEMENTS = 5000
_DTD_MARKUP = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class MetadataError(ProtocolError):
    """Metadata that cannot be read (answer 400)."""


@dataclass
class Participant:
    participant_id: str
    aors: list[str] = field(default_factory=list)  # nameID aor, in order
    names: list[str] = field(default_factory=list)

    @property
    def aor(self) -> str | None:
        return self.aors[0] if self.aors else None

    @property
    def name(self) -> str | None:
        return self.names[0] if self.names else None


@dataclass
class Stream:
    stream_id: str
    session_id: str | None = None
    label: str | None = None


@dataclass
class CommunicationSession:
    session_id: str
    sip_session_ids: list[str] = field(default_factory=list)
    group_id: str | None = None
    start_time: datetime | None = None
    stop_time: datetime | None = None


@dataclass
class StreamAssociation:
    """participantstreamassoc: the streams a participant sends and receives now."""

    participant_id: str
    sends: set[str] = field(default_factory=set)
    receives: set[str] = field(default_factory=set)
    disassociated: bool = False


@dataclass
class Association:
    """A group, sessionrecordingassoc or participantsessionassoc: when it began and ended."""

    associate_time: datetime | None = None
    disassociate_time: datetime | None = None


@dataclass
class RecordingMetadata:
    data_mode: str = "complete"
    groups: dict[str, Association] = field(default_factory=dict)
    sessions: dict[str, CommunicationSession] = field(default_factory=dict)
    participants: dict[str, Participant] = field(default_factory=dict)
    streams: dict[str, Stream] = field(default_factory=dict)
    stream_associations: dict[str, StreamAssociation] = field(default_factory=dict)
    session_recording: dict[str, Association] = field(default_factory=dict)
    participant_sessions: dict[tuple[str, str], Association] = field(default_factory=dict)
    # Streams someone has been said to send, in this document or any merged before it: only
    # such a stream can be paused (one never associated is merely undescribed).
    ever_sent: set[str] = field(default_factory=set)

    def stream_for_label(self, label: str) -> Stream | None:
        return next((s for s in self.streams.values() if s.label == label), None)

    def senders(self, stream_id: str) -> list[Participant]:
        """The participants sending ``stream_id`` now, in document order."""
        return [self.participants.get(a.participant_id, Participant(a.participant_id))
                for a in self.stream_associations.values()
                if not a.disassociated and stream_id in a.sends]

    def participant_for_label(self, label: str) -> Participant | None:
        """Who sends the stream an m-line's ``a=label`` names (the first, for a mix)."""
        stream = self.stream_for_label(label)
        senders = self.senders(stream.stream_id) if stream else []
        return senders[0] if senders else None

    def paused_labels(self) -> set[str]:
        """Labels of streams that had a sender and have none now (on hold, or paused)."""
        return {s.label for s in self.streams.values() if s.label is not None
                and s.stream_id in self.ever_sent and not self.senders(s.stream_id)}

    @property
    def session_id(self) -> str | None:
        """The first communication session's id (GLOBALCALLID's source)."""
        return next(iter(self.sessions), None)


def _name(element: etree._Element) -> str | None:
    """The lower-cased local name of a recording element; None for extensions."""
    tag: object = element.tag
    if not isinstance(tag, str):  # an entity or comment node, should one get through
        return None
    qname = etree.QName(element)
    return qname.localname.lower() if qname.namespace in _NAMESPACES else None


def _attr(element: etree._Element, *names: str) -> str | None:
    for name in names:
        value = element.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def _text(element: etree._Element) -> str:
    return " ".join("".join(str(t) for t in element.itertext()).split())


def _time(element: etree._Element) -> datetime | None:
    try:
        return datetime.fromisoformat(_text(element))
    except ValueError:
        return None


def _children(element: etree._Element) -> list[tuple[str, etree._Element]]:
    return [(name, child) for child in element if (name := _name(child)) is not None]


def _times(element: etree._Element) -> Association:
    association = Association()
    for name, child in _children(element):
        if name == "associate-time":
            association.associate_time = _time(child)
        elif name == "disassociate-time":
            association.disassociate_time = _time(child)
    return association


def parse_metadata(data: bytes) -> RecordingMetadata:
    """The metadata in ``data``; raises MetadataError (400) for anything unreadable."""
    if len(data) > MAX_METADATA_BYTES:
        raise MetadataError("the metadata is over the size limit")
    if _DTD_MARKUP.search(data):
        raise MetadataError("DOCTYPE and ENTITY declarations are not accepted")
    try:
        root = etree.fromstring(data, safexml.parser())
    except etree.XMLSyntaxError as exc:
        raise MetadataError(f"malformed XML: {exc.msg}") from None
    except ValueError as exc:  # e.g. a unicode string with an encoding declaration
        raise MetadataError(f"unreadable XML: {exc}") from None
    if root.getroottree().docinfo.internalDTD is not None:
        # One the byte check could not see (a document in UTF-16, say).
        raise MetadataError("DOCTYPE and ENTITY declarations are not accepted")
    if _name(root) != "recording":
        raise MetadataError("the root element is not <recording>")
    if sum(1 for _ in root.iter()) > MAX_ELEMENTS:
        raise MetadataError("the metadata has too many elements")
    metadata = RecordingMetadata()
    for name, element in _children(root):
        _READERS.get(name, _ignore)(metadata, element)
    metadata.ever_sent = {stream for association in metadata.stream_associations.values()
                          if not association.disassociated for stream in association.sends}
    return metadata


def _ignore(metadata: RecordingMetadata, element: etree._Element) -> None:
    pass


def _data_mode(metadata: RecordingMetadata, element: etree._Element) -> None:
    mode = _text(element).lower()
    if mode not in ("complete", "partial"):
        raise MetadataError(f"dataMode is neither complete nor partial: {mode[:20]!r}")
    metadata.data_mode = mode


def _group(metadata: RecordingMetadata, element: etree._Element) -> None:
    group_id = _attr(element, "group_id", "id")
    if group_id is None:
        raise MetadataError("a <group> without group_id")
    metadata.groups[group_id] = _times(element)


def _session(metadata: RecordingMetadata, element: etree._Element) -> None:
    session_id = _attr(element, "session_id", "id")
    if session_id is None:
        raise MetadataError("a <session> without session_id")
    session = CommunicationSession(session_id)
    for name, child in _children(element):
        if name == "sipsessionid":
            session.sip_session_ids.append(_text(child).replace("; ", ";"))
        elif name == "group-ref":
            session.group_id = _text(child)
        elif name == "start-time":
            session.start_time = _time(child)
        elif name == "stop-time":
            session.stop_time = _time(child)
    metadata.sessions[session_id] = session


def _participant(metadata: RecordingMetadata, element: etree._Element) -> None:
    participant_id = _attr(element, "participant_id", "id")
    if participant_id is None:
        raise MetadataError("a <participant> without participant_id")
    participant = Participant(participant_id)
    legacy = StreamAssociation(participant_id)
    for name, child in _children(element):
        if name == "nameid":
            if (aor := _attr(child, "aor")) is not None:
                participant.aors.append(aor)
            participant.names += [_text(n) for n_name, n in _children(child)
                                  if n_name == "name" and _text(n)]
        elif name == "aor" and _text(child):  # pre-RFC form
            participant.aors.append(_text(child))
        elif name == "name" and _text(child):
            participant.names.append(_text(child))
        elif name in ("send", "recv") and _text(child):
            (legacy.sends if name == "send" else legacy.receives).add(_text(child))
    metadata.participants[participant_id] = participant
    if legacy.sends or legacy.receives:
        metadata.stream_associations[participant_id] = legacy


def _stream(metadata: RecordingMetadata, element: etree._Element) -> None:
    stream_id = _attr(element, "stream_id", "id")
    if stream_id is None:
        raise MetadataError("a <stream> without stream_id")
    label = next((_text(c) for n, c in _children(element) if n == "label"), None)
    metadata.streams[stream_id] = Stream(stream_id, _attr(element, "session_id", "session"),
                                         label or None)


def _stream_association(metadata: RecordingMetadata, element: etree._Element) -> None:
    participant_id = _attr(element, "participant_id")
    if participant_id is None:
        raise MetadataError("a <participantstreamassoc> without participant_id")
    association = StreamAssociation(participant_id)
    for name, child in _children(element):
        if name in ("send", "recv") and _text(child):
            (association.sends if name == "send" else association.receives).add(_text(child))
    association.disassociated = _times(element).disassociate_time is not None
    metadata.stream_associations[participant_id] = association


def _session_recording(metadata: RecordingMetadata, element: etree._Element) -> None:
    session_id = _attr(element, "session_id")
    if session_id is None:
        raise MetadataError("a <sessionrecordingassoc> without session_id")
    metadata.session_recording[session_id] = _times(element)


def _participant_session(metadata: RecordingMetadata, element: etree._Element) -> None:
    participant_id = _attr(element, "participant_id")
    session_id = _attr(element, "session_id")
    if participant_id is None or session_id is None:
        raise MetadataError("a <participantsessionassoc> without its two ids")
    metadata.participant_sessions[(participant_id, session_id)] = _times(element)


_READERS = {
    "datamode": _data_mode, "group": _group, "session": _session,
    "participant": _participant, "stream": _stream,
    "participantstreamassoc": _stream_association,
    "sessionrecordingassoc": _session_recording,
    "participantsessionassoc": _participant_session,
}


def merge(known: RecordingMetadata, update: RecordingMetadata) -> RecordingMetadata:
    """What is known after ``update``: a complete update replaces everything (keeping only
    which streams were ever sent, so a complete document can pause one too); a partial one
    changes only the elements it holds (by id), and a participant's stream association it
    holds replaces the old one whole (an omitted <send> means it no longer sends)."""
    if update.data_mode == "complete":
        replaced = copy.deepcopy(update)
        replaced.ever_sent |= known.ever_sent
        return replaced
    merged = copy.deepcopy(known)
    merged.data_mode = "complete"
    merged.ever_sent |= update.ever_sent
    for group_id, times in update.groups.items():
        merged.groups[group_id] = _merge_times(merged.groups.get(group_id), times)
    for session_id, session in update.sessions.items():
        old = merged.sessions.get(session_id)
        if old is None:
            merged.sessions[session_id] = copy.deepcopy(session)
            continue
        old.sip_session_ids = list(session.sip_session_ids or old.sip_session_ids)
        old.group_id = session.group_id or old.group_id
        old.start_time = session.start_time or old.start_time
        old.stop_time = session.stop_time or old.stop_time
    for participant_id, participant in update.participants.items():
        previous = merged.participants.get(participant_id)
        if previous is None:
            merged.participants[participant_id] = copy.deepcopy(participant)
            continue
        previous.aors = list(participant.aors or previous.aors)
        previous.names = list(participant.names or previous.names)
    for stream_id, stream in update.streams.items():
        before = merged.streams.get(stream_id)
        merged.streams[stream_id] = Stream(
            stream_id, stream.session_id or (before.session_id if before else None),
            stream.label or (before.label if before else None))
    merged.stream_associations.update(copy.deepcopy(update.stream_associations))
    for session_id, times in update.session_recording.items():
        merged.session_recording[session_id] = _merge_times(
            merged.session_recording.get(session_id), times)
    for key, times in update.participant_sessions.items():
        merged.participant_sessions[key] = _merge_times(merged.participant_sessions.get(key),
                                                        times)
    return merged


def _merge_times(old: Association | None, new: Association) -> Association:
    if old is None:
        return copy.deepcopy(new)
    return Association(new.associate_time or old.associate_time,
                       new.disassociate_time or old.disassociate_time)
