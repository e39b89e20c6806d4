"""The dialogue engine alone: pure functions over a Conversation, no database."""

from __future__ import annotations

from bot.domain import flow
from bot.domain.flow import Command, Facts, FlowConfig, Input, Prompt, Say, Transition
from bot.domain.models import Attachment, ConsentPurpose, Conversation

CONFIG = FlowConfig(notice_version="test", text_min=5, text_max=50, max_attachments=2)


NO_FACTS = Facts()


def begin(facts: Facts = NO_FACTS) -> Transition:
    return flow.start(Conversation(id="k", locale="en"), CONFIG, facts)


def step(t: Transition, inp: Input, facts: Facts = NO_FACTS) -> Transition:
    return flow.handle(t.conversation, inp, CONFIG, facts)


def prompt(t: Transition) -> Prompt:
    last = t.replies[-1]
    assert isinstance(last, Prompt)
    return last


def through_consents() -> Transition:
    t = begin()
    for _ in range(3):
        t = step(t, Input.choice("yes"))
    return t


def test_c6_2_the_notice_comes_before_anything_personal() -> None:
    t = begin()
    assert t.conversation.step == "notice"
    assert prompt(t).text.params["version"] == "test"
    assert t.effects == ()


def test_c3_1_7_expanded_use_is_a_separate_optional_step_offering_no_first() -> None:
    t = step(begin(), Input.choice("yes"))
    assert t.conversation.step == "expanded_use"
    assert [o.value for o in prompt(t).options] == ["no", "yes"]
    t = step(t, Input.choice("no"))
    assert t.conversation.step == "licence"  # declining the optional consent goes on
    assert t.effects[0] == flow.RecordConsent(
        ConsentPurpose.EXPANDED_USE,
        False,
        t.effects[0].shown,  # type: ignore[union-attr]
    )


def test_declining_processing_ends_with_nothing_but_a_refusal() -> None:
    t = step(begin(), Input.choice("no"))
    assert t.ended
    assert t.effects == (flow.RefuseProcessing(),)
    assert isinstance(t.replies[0], Say)
    assert t.conversation.step is None


def test_c3_2_3_licence_required_or_optional_by_configuration() -> None:
    t = step(step(begin(), Input.choice("yes")), Input.choice("no"))
    declined = step(t, Input.choice("no"))
    assert declined.ended
    relaxed = flow.handle(
        t.conversation,
        Input.choice("no"),
        FlowConfig(notice_version="t", licence_required=False),
        Facts(),
    )
    assert not relaxed.ended
    assert relaxed.conversation.step == "category"


def test_consents_already_given_are_not_asked_again() -> None:
    facts = Facts(decided=frozenset(ConsentPurpose))
    assert begin(facts).conversation.step == "category"


def test_the_facts_are_asked_for_wherever_they_can_change_the_outcome() -> None:
    # The dialogue looks the consents up only when needs_facts says so: wherever it does
    # not, knowing every consent decided or none must make no difference.
    decided = Facts(decided=frozenset(ConsentPurpose))
    inputs = [Input.command(Command.START), *(Input.choice("yes"),) * 3, Input.choice("price")]
    inputs += [Input.choice("2"), Input.text("Too expensive"), Input.choice("done")]
    inputs += [Input.choice("skip"), Input.choice("edit:rating"), Input.choice("4")]
    inputs += [Input.command(Command.HELP), Input.choice("submit")]
    conversation = Conversation(id="k", locale="en")
    needed = []
    for inp in inputs:
        needed.append(flow.needs_facts(conversation, inp))
        without = flow.handle(conversation, inp, CONFIG, NO_FACTS)
        if not needed[-1]:
            assert flow.handle(conversation, inp, CONFIG, decided) == without
        conversation = without.conversation
    assert needed[:5] == [True, True, True, False, False]  # start and between the consents
    assert not any(needed[3:])
    assert conversation.step is None  # the whole flow was walked, to the ticket
    # Restarting is always a question of facts.
    assert flow.needs_facts(conversation, Input.text("hello"))
    assert flow.needs_facts(to_summary().conversation, Input.command(Command.START))


def test_validation_reasks_the_same_step_with_a_reason() -> None:
    t = through_consents()
    t = step(t, Input.text("banana"))
    assert t.conversation.step == "category"
    assert prompt(t).error is not None
    t = step(t, Input.text("3"))  # the third option, typed
    assert t.conversation.answers["category"] == "price"
    t = step(t, Input.choice("9"))
    assert prompt(t).error is not None
    assert t.conversation.step == "rating"
    t = step(t, Input.choice("4"))
    short = step(t, Input.text("  ok "))
    assert short.conversation.step == "text"
    assert prompt(short).error is not None
    assert prompt(short).error.params == {"min": 5}  # type: ignore[union-attr]
    long = step(t, Input.text("x" * 51))
    assert prompt(long).error.params == {"max": 50, "count": 51}  # type: ignore[union-attr]
    control = step(t, Input.text("\x00\x07Good\x1b service"))
    assert control.conversation.answers["text"] == "Good service"


def test_attachments_and_own_work_marks() -> None:
    t = through_consents()
    for inp in (Input.choice("other"), Input.choice("5"), Input.text("It works well")):
        t = step(t, inp)
    assert t.conversation.step == "attachments"
    photo = Attachment(kind="photo", file_ref="f1")
    t = step(t, Input.file(photo))
    t = step(t, Input.file(Attachment(kind="document", file_ref="f2")))
    too_many = step(t, Input.file(Attachment(kind="document", file_ref="f3")))
    assert prompt(too_many).error is not None
    t = step(t, Input.choice("own:1"))
    t = step(t, Input.choice("own:text"))
    assert [a["own_work"] for a in t.conversation.answers["attachments"]] == [True, False]
    assert t.conversation.answers["text_own_work"] is True
    t = step(t, Input.text("just words"))
    assert prompt(t).error is not None
    t = step(t, Input.choice("done"))
    assert t.conversation.step == "contact"


def test_contact_is_optional_and_validated() -> None:
    t = through_consents()
    for inp in (
        Input.choice("other"),
        Input.choice("5"),
        Input.text("It works"),
        Input.choice("done"),
    ):
        t = step(t, inp)
    for bad in ("not-an-email@", "12", "<script>@x.com", "a@b"):
        assert prompt(step(t, Input.text(bad))).error is not None
    assert step(t, Input.text("li@example.cn")).conversation.answers["contact"] == {
        "email": "li@example.cn"
    }
    assert step(t, Input.text("+86 138-0013-8000")).conversation.answers["contact"] == {
        "phone": "+8613800138000"
    }
    skipped = step(t, Input.choice("skip"))
    assert skipped.conversation.answers["contact"] == {}
    assert skipped.conversation.step == "summary"


def to_summary() -> Transition:
    t = through_consents()
    for inp in (
        Input.choice("price"),
        Input.choice("2"),
        Input.text("Too expensive"),
        Input.choice("done"),
        Input.choice("skip"),
    ):
        t = step(t, inp)
    assert t.conversation.step == "summary"
    return t


def test_edit_from_the_summary_returns_to_the_summary() -> None:
    t = to_summary()
    t = step(t, Input.choice("edit:rating"))
    assert t.conversation.step == "rating"
    t = step(t, Input.choice("5"))
    assert t.conversation.step == "summary"
    assert t.conversation.answers["rating"] == 5
    assert prompt(t).text.params["rating"] == 5


def test_back_walks_the_history_and_stops_at_the_first_step() -> None:
    t = to_summary()
    visited = []
    while t.conversation.history:
        t = step(t, Input.command(Command.BACK))
        visited.append(t.conversation.step)
    assert visited == [
        "contact",
        "attachments",
        "text",
        "rating",
        "category",
        "licence",
        "expanded_use",
        "notice",
    ]
    t = step(t, Input.command(Command.BACK))
    assert prompt(t).error is not None  # nothing before the first question


def test_cancel_and_help_work_at_every_step() -> None:
    t = begin()
    for inp in (Input.choice("yes"),) * 3 + (Input.choice("price"), Input.choice("2")):
        helped = step(t, Input.command(Command.HELP))
        assert isinstance(helped.replies[0], Say)
        assert helped.conversation.step == t.conversation.step
        cancelled = step(t, Input.command(Command.CANCEL))
        assert cancelled.ended
        assert cancelled.conversation.step is None
        t = step(t, inp)


def test_submit_files_once_with_the_flow_id() -> None:
    t = to_summary()
    done = step(t, Input.choice("submit"))
    assert done.ended
    (effect,) = done.effects
    assert isinstance(effect, flow.FileTicket)
    assert effect.flow_id == t.conversation.answers["flow_id"]
    assert effect.answers["category"] == "price"


def test_adding_a_step_is_a_data_change() -> None:
    # Every step is reachable from FLOW alone and every option label is translatable text.
    assert [s.id for s in flow.FLOW][-1] == "summary"
    assert set(flow.STEPS) == {s.id for s in flow.FLOW}
    assert len(flow.CATEGORY_LABELS) == 9  # C2.1: eight categories and "other"
