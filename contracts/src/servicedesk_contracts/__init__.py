"""servicedesk message contracts: the only code services share about messages."""

from servicedesk_contracts import messages, topics
from servicedesk_contracts.codec import InvalidMessage, decode
from servicedesk_contracts.envelope import Envelope, Message

__all__ = ["Envelope", "InvalidMessage", "Message", "decode", "messages", "topics"]
