"""Put desk rows straight into a test database with SQLAlchemy Core.

Tests of the chat views and actions set up exactly the state a rule talks
about (a chat closed 25 hours ago, a comment tagging bob, ...) without going
through other commands.
"""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy import insert, select

from chatctl.storage.models import Agent, AuditEvent, Chat, Comment, CommentMention, Customer, Message, Notification

UTC = dt.timezone.utc


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def alice_bob_and_sue(engine) -> Rows:
    """Two online agents and a supervisor: the people of the acting-as and bell tests."""
    desk = Rows(engine)
    desk.agent("alice")
    desk.agent("bob")
    desk.agent("sue", role="supervisor")
    return desk


class Rows:
    def __init__(self, engine) -> None:
        self.engine = engine
        self._numbers = itertools.count(1)

    def agent(self, handle: str, *, role: str = "agent", presence: str = "online", active: bool = True) -> int:
        with self.engine.begin() as connection:
            return connection.execute(insert(Agent).values(
                handle=handle, name=handle.title(), role=role, presence=presence, active=active,
                created_at=now() - dt.timedelta(days=30)).returning(Agent.id)).scalar_one()

    def agent_id(self, handle: str) -> int:
        with self.engine.connect() as connection:
            return connection.execute(select(Agent.id).where(Agent.handle == handle)).scalar_one()

    def chat(self, chat_id: int | None = None, *, status: str = "live", channel: str = "webchat",
             agent: str | None = None, customer: str | None = None, ago: dt.timedelta = dt.timedelta(hours=1),
             customer_wrote: dt.timedelta | None = dt.timedelta(minutes=30),
             agent_wrote: dt.timedelta | None = None, seen: dt.timedelta | None = None,
             flagged: bool = False, pending_since: dt.timedelta | None = None,
             closed: dt.timedelta | None = None, closed_by: str | None = None, reassign_count: int = 0) -> int:
        """A chat created ``ago``; the other durations are how long ago each thing happened."""
        at = now()
        number = next(self._numbers)
        address = customer or f"+2782{number:07d}"
        with self.engine.begin() as connection:
            customer_id = connection.execute(select(Customer.id).where(Customer.address == address)).scalar()
            if customer_id is None:
                customer_id = connection.execute(insert(Customer).values(
                    display_name=f"Customer {number}", address=address, created_at=at - ago)
                    .returning(Customer.id)).scalar_one()
            agent_id = connection.execute(select(Agent.id).where(Agent.handle == agent)).scalar() if agent else None
            stamps = [at - ago] + [at - d for d in (customer_wrote, agent_wrote) if d is not None]
            values = dict(
                customer_id=customer_id, channel=channel, status=status, agent_id=agent_id,
                assigned_at=at - ago if agent_id else None, reassign_count=reassign_count,
                flagged=flagged, flagged_by="ops:tester" if flagged else None, flagged_at=at if flagged else None,
                created_at=at - ago,
                last_customer_message_at=at - customer_wrote if customer_wrote is not None else None,
                last_agent_message_at=at - agent_wrote if agent_wrote is not None else None,
                last_activity_at=max(stamps),
                agent_seen_at=at - seen if seen is not None else None,
                pending_since=at - pending_since if pending_since is not None else None,
                closed_at=at - closed if closed is not None else None,
                closed_by=closed_by or ("agent" if closed is not None else None),
                close_reason="manual" if closed is not None else None,
            )
            if chat_id is not None:
                values["id"] = chat_id
            chat_id = connection.execute(insert(Chat).values(**values).returning(Chat.id)).scalar_one()
            if customer_wrote is not None:
                connection.execute(insert(Message).values(chat_id=chat_id, direction="inbound", kind="text",
                                                          body="hello?", created_at=at - customer_wrote))
            if agent_wrote is not None:
                connection.execute(insert(Message).values(chat_id=chat_id, direction="outbound", kind="text",
                                                          agent_id=agent_id, body="Hi!", created_at=at - agent_wrote))
        return chat_id

    def comment(self, chat_id: int, author: str, body: str, mentions: tuple[str, ...] = ()) -> int:
        with self.engine.begin() as connection:
            author_id = connection.execute(select(Agent.id).where(Agent.handle == author)).scalar_one()
            comment_id = connection.execute(insert(Comment).values(
                chat_id=chat_id, agent_id=author_id, body=body, created_at=now()).returning(Comment.id)).scalar_one()
            for handle in mentions:
                agent_id = connection.execute(select(Agent.id).where(Agent.handle == handle)).scalar_one()
                connection.execute(insert(CommentMention).values(comment_id=comment_id, agent_id=agent_id,
                                                                 chat_id=chat_id))
                connection.execute(insert(Notification).values(agent_id=agent_id, kind="tagged", chat_id=chat_id,
                                                               comment_id=comment_id, created_at=now()))
        return comment_id

    def get(self, chat_id: int):
        with self.engine.connect() as connection:
            return connection.execute(select(Chat).where(Chat.id == chat_id)).first()

    def count(self, model, *where) -> int:
        from sqlalchemy import func

        with self.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(model).where(*where)).scalar_one()

    def audit(self, *where):
        with self.engine.connect() as connection:
            return connection.execute(select(AuditEvent).where(*where).order_by(AuditEvent.id)).all()
