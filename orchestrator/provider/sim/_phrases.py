"""The simulated provider's sentence templates and word banks, as one table (``_text`` fills
them in)."""

from __future__ import annotations


def _table(text: str) -> dict[str, tuple[str, ...]]:
    """Parse ``[name]`` groups with one entry per line; ``|`` separates short entries."""
    groups = (part.split("]\n", 1) for part in text.split("\n[")[1:])
    return {
        name: tuple(item for line in body.strip().splitlines() for item in line.split("|"))
        for name, body in groups
    }


# Word banks (lower-case groups) fill template fields: {actor2} is a second, different actor,
# {Actor} a capitalised one. {t} is the topic and {a} the audience.
PHRASES = _table("""
[actor]
practitioners|researchers|engineers|policy makers|early adopters|critics|consultants|educators
small teams|independent reviewers
[benefit]
saved time|fewer errors|clearer decisions|lower running costs|better coordination|wider access
faster feedback
[cost]
training|maintenance|upfront investment|integration work|ongoing oversight
[factor]
local context|careful introduction|the skill of the people involved|sustained funding
the quality of the underlying data|leadership support
[aspect]
its technical foundations|its costs|its practical limits|its social effects|its governance
its measurable outcomes
[setting]
large organisations|well-funded pilots|English-language sources|wealthy countries
[pressure]
tighter budgets|new regulation|a high-profile failure|cheaper alternatives
[facts]
Practitioners commonly report that the payoff from {t} comes from {benefit}, not {benefit2}.
Definitions of {t} vary between sources; most emphasise {aspect}, fewer {aspect2}.
Interest in {t} has grown in recent years, though published adoption figures differ widely.
The costs most often cited for {t} are {cost} and {cost2}.
{Actor} and {actor2} often disagree about how success with {t} should be measured.
Early work on {t} concentrated on {aspect}; attention has since shifted to {aspect2}.
Results with {t} depend heavily on {factor}, which makes studies hard to compare.
Published case studies of {t} come mostly from {setting}, which may skew the picture.
No single standard for {t} is universally accepted, though several sectors publish guidance.
Claims that {t} will guarantee {benefit} circulate widely but lack independent data.
Reported failures with {t} are more often about {cost} than about the core idea.
{Actor} tend to describe {t} in terms of {aspect}, while {actor2} focus on {aspect2}.
Long-term data on {t} remain thin; most evaluations cover only the first year or two.
[scopes]
What follows separates settled points about {t} from claims that still need checking.
The aim is to give a writer on {t} solid ground to stand on, and to flag the soft spots.
[perspectives]
**Enthusiasts** see in {t} a route to {benefit} that older approaches cannot match.
**Sceptics** note that the evidence for {t} is thinner than its reputation, outside {setting}.
**Pragmatists** treat {t} as one tool among several: useful where {factor} is favourable.
**Economists** weigh {benefit} against the cost of {cost}, and find the balance uneven.
**Critics of the hype** warn that enthusiasm for {t} can crowd out cheaper options.
**People closest to the work** care less about theory and more about {factor}.
**Regulators** want clearer definitions before committing to rules on {t}.
[audience_notes]
For {a}, the most useful framing is practical: what changes because of {t}, at what cost.
Writing for {a} suggests leading with concrete cases and keeping the jargon to a minimum.
[example_names]
A small team's first year|A city pilot|A classroom trial|A rollout that stalled
A volunteer community|A mid-sized manufacturer|A hospital department|A regional programme
[example_openings]
A group new to {t} started with a narrow goal and widened it only after seeing {benefit}.
The early months were dominated by {cost}, which nobody had budgeted for.
The project began as a side experiment with {t} and grew once {actor} took notice.
Initial results looked promising, but {cost} slowed progress in the second phase.
[example_lessons]
By most accounts, what made the difference was {factor}.
It is often retold as a success, though the published details are sparse (unverified).
Participants said the hardest part was agreeing on what success meant.
It shows that {t} can deliver {benefit} when the surrounding conditions are right.
When funding ended, some of the gains faded, which is a useful caution.
[questions]
How well do the results for {t} hold up at larger scale, and over longer periods?
Who bears the cost when something goes wrong with {t}, and who should?
Will the current enthusiasm for {t} survive {pressure}?
Which of the benefits claimed for {t} are durable, and which are novelty effects?
How should success with {t} be measured, and by whom?
Are the results from {setting} representative of everyone else?
How much of the reported progress in {t} reflects better measurement, not real change?
Will {t} prove a lasting shift, or be absorbed quietly into ordinary practice?
[titles]
{T}: What Actually Matters|Getting {T} Right|What Nobody Tells You About {T}
{T}, Explained Without the Hype|The Quiet Complexity of {T}|Making Sense of {T}
[headings]
Where It All Started|Why It Matters Now|What the Evidence Actually Says
How It Plays Out in Practice|The Case For and Against|The Costs Nobody Mentions
Who Gains and Who Loses|What Practitioners Have Learned|The Questions Still Open
[closing_headings]
The Bottom Line|Where This Leaves Us|What to Take Away|Looking Ahead
[hooks]
Few subjects attract as much confident opinion, and as little careful evidence, as {t}.
Ask five people about {t} and you are likely to get five different answers.
For all the attention paid to {t}, the basic questions are still surprisingly open.
Behind the headlines about {t} sits a quieter story about {cost}, patience and trade-offs.
The aim here is simple: to separate what is known about {t} from what is merely repeated.
[reader_lines]
This article is written for {a}, so it favours plain explanations over jargon.
If you count yourself among {a}, the aim is to leave you with a clearer picture, not a verdict.
[body]
To understand {t}, it helps to start with what it is for rather than how it works.
{Actor} tend to judge it by {benefit}, while {actor2} look first at {cost}.
Nothing here happens in a vacuum: {factor} shapes the outcome as much as the idea itself.
In practice, the first months usually go on {cost}, and the visible gains come later.
A useful way to think about {t} is as a set of trade-offs rather than a single decision.
The jargon can obscure a simple point: what matters is whether people end up with {benefit}.
Where efforts around {t} have worked well, the people involved usually mention {factor} first.
Where it has disappointed, the story tends to involve underestimated {cost}.
It is worth being precise here, because loose claims about {t} spread quickly.
Much of the public conversation is about {aspect}, when {aspect2} may matter more.
The honest answer is that the evidence is mixed, and it varies with context.
Seen from the ground, work on {t} looks less like a revolution than steady, unglamorous effort.
The more carefully {actor} look, the more the answer seems to depend on {factor}.
[weaves]
One point from the research stands out: {f}|Consider a finding that keeps coming up: {f}
{f} That detail matters more than it first appears.|The research puts it plainly: {f}
{f} It is a useful corrective to the louder claims.
[conclusions]
None of this makes {t} simple, but it does make it easier to think about clearly.
The best advice is the least exciting: start small, measure honestly and expect {cost}.
For {a}, the takeaway is to treat confident claims about {t} with curiosity, not faith.
What happens next will depend less on the idea itself than on {factor}.
That is a more modest story than the hype suggests, and a more useful one.
The open questions are real, but they are the kind that careful work can answer.
[edit_hooks]
Describing {t} is easy; doing it well is not.|The debate over {t} is louder than the evidence.
Most of what is said about {t} is too hopeful or too dismissive.|Start with what is known.
The useful questions about {t} are practical: what it costs, what it delivers, for whom.
[edit_body]
The pattern is consistent: results depend on {factor}.|Expect {cost} to dominate early on.
{Actor} value {benefit}; {actor2} worry about {cost}. Both have a point.
The evidence is mixed, and honest accounts say so.|Small, well-measured steps beat big launches.
What separates success from failure is rarely the idea.|Claims about {t} need scrutiny too.
Attention usually goes to {aspect}, when {aspect2} may matter more.
The strongest cases share one trait: attention to {factor} from the start.
Where projects built on {t} fall short, the cause is usually underestimated {cost}.
The gains are real but modest, and slow to arrive.|Read any single figure in context.
{Actor} who have done this well describe it as steady work, not a breakthrough.
The first question to ask is what problem work on {t} is meant to solve.
[edit_conclusions]
The case for {t} is real but conditional.|Treat confident claims, for or against, with care.
Begin modestly, and budget for {cost} from the first day.
For {a}, that is the point worth keeping: with {t}, patience beats enthusiasm.
The open questions will be settled by evidence, not by argument.
Done carefully, work on {t} earns its place; done in a hurry, it rarely does.
[generic_openings]
Here is a short, practical answer to {t}.|Let me take {t} step by step.
The answer to {t} depends on a few things, so let me take them in turn.
[generic_body]
The first thing to settle is what you actually want to achieve, because that shapes the answer.
In most cases, the simplest approach that works is the right one to start with.
It is worth checking your assumptions early; small misunderstandings tend to grow.
If the details matter, try the idea on a small example before relying on it.
Where {factor} is uncertain, keep your options open.
A common mistake is to aim for {benefit} before the basics are in place.
[generic_points]
Start with the simplest version and improve it once it works.
Write down what success looks like before you begin.|Expect {cost} to take longer than planned.
Ask someone with experience to review your plan.|Keep notes of what changed and why.
Revisit the decision once you have real results.
[generic_closings]
I hope that helps; with more detail I can be more specific.|Tell me which part to expand on.
""")
