"""What the SVG line chart promises: a parseable standalone document, one line per series,
dashed theory, hoverable markers, nice ticks, escaped text, and clear refusals."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from orchestrator.measure._plot import Series, line_chart_svg

NS = "{http://www.w3.org/2000/svg}"
CONCURRENCY = (1, 5, 10, 25)


def bench_series() -> list[Series]:
    """3 batch sizes x 4 concurrencies, measured and theoretical, as `orchestrate bench` makes."""
    out = []
    for batch in (10, 100, 1000):
        theory = [(c, batch * 2.0 / c) for c in CONCURRENCY]
        measured = [(c, t * (1.1 + 0.05 * i)) for i, (c, t) in enumerate(theory)]
        out.append(Series(f"{batch} topics", measured, group=str(batch)))
        out.append(Series(f"{batch} topics (theory)", theory, dashed=True, group=str(batch)))
    return out


def render(series: list[Series], **options: bool) -> ET.Element:
    svg = line_chart_svg(series, title="T", x_label="X", y_label="Y", **options)
    return ET.fromstring(svg)


def lines(root: ET.Element) -> list[ET.Element]:
    return root.findall(f"{NS}polyline")


def markers(root: ET.Element) -> list[ET.Element]:
    """Plot markers carry a hover title; legend samples do not."""
    return [c for c in root.iter(f"{NS}circle") if c.find(f"{NS}title") is not None]


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}text")]


def test_root_is_a_standalone_svg_with_a_viewbox() -> None:
    svg = line_chart_svg(bench_series(), title="T", x_label="X", y_label="Y", log_x=True)
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    assert "<script" not in svg and "href" not in svg and "url(" not in svg


def test_one_line_per_series_and_only_theory_is_dashed() -> None:
    series = bench_series()
    drawn = lines(render(series, log_x=True, log_y=True))
    assert len(drawn) == len(series)
    assert [p.get("stroke-dasharray") is not None for p in drawn] == [s.dashed for s in series]


def test_one_marker_per_measured_point_with_hover_text() -> None:
    series = bench_series()
    found = markers(render(series, log_x=True))
    assert len(found) == sum(len(s.points) for s in series if not s.dashed)
    title = found[0].find(f"{NS}title")
    assert title is not None and title.text == "10 topics: x=1, y=22"


def test_a_group_shares_one_colour_and_groups_differ() -> None:
    colours = [p.get("stroke") for p in lines(render(bench_series()))]
    assert colours[0] == colours[1] and colours[2] == colours[3] and colours[4] == colours[5]
    assert len({colours[0], colours[2], colours[4]}) == 3


def test_log_x_with_few_values_ticks_exactly_at_them() -> None:
    labels = texts(render(bench_series(), log_x=True))
    assert labels[1:5] == ["1", "5", "10", "25"]  # after the title, before the y ticks


def test_log_x_falls_back_to_1_2_5_ticks_when_exact_labels_would_collide() -> None:
    labels = texts(render([Series("s", [(x, 1.0) for x in range(1, 13)])], log_x=True))
    assert labels[1:4] == ["1", "2", "5"]


def test_linear_ticks_step_by_1_2_5_and_print_compactly() -> None:
    root = render([Series("s", [(0, 0), (1, 2400)])])
    labels = texts(root)
    assert {"0", "0.2", "0.4", "1"} <= set(labels)
    assert {"0", "500", "1k", "1.5k", "2.5k"} <= set(labels)
    assert not any("000000" in label for label in labels)


def test_log_y_ticks_are_powers_of_ten_or_1_2_5() -> None:
    wide = texts(render([Series("s", [(1, 0.01), (2, 1000)])], log_y=True))
    assert {"0.01", "0.1", "1", "10", "100", "1k"} <= set(wide)
    narrow = texts(render([Series("s", [(1, 3), (2, 60)])], log_y=True))
    assert {"5", "10", "20", "50"} <= set(narrow)


def test_all_text_is_escaped() -> None:
    nasty = 'a <script>&"'
    svg = line_chart_svg(
        [Series(nasty, [(1, 1), (2, 2)])], title=nasty, x_label=nasty, y_label=nasty
    )
    root = ET.fromstring(svg)
    assert "<script>" not in svg
    assert texts(root).count(nasty) == 4  # title, both axes, legend
    assert root.findall(f".//{NS}title")[0].text == f"{nasty}: x=1, y=1"


def test_larger_values_go_right_and_up() -> None:
    root = render([Series("s", [(1, 1), (2, 5), (3, 3), (4, 20)])], log_y=True)
    points = [tuple(map(float, p.split(","))) for p in lines(root)[0].get("points", "").split()]
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    by_value = [points[i][1] for i in (0, 2, 1, 3)]  # y = 1, 3, 5, 20
    assert by_value == sorted(by_value, reverse=True)


def test_coordinates_have_at_most_two_decimals() -> None:
    root = render(bench_series(), log_x=True, log_y=True)
    for p in lines(root):
        for number in p.get("points", "").replace(",", " ").split():
            assert len(number.partition(".")[2]) <= 2


def test_same_input_gives_the_same_text() -> None:
    def once() -> str:
        return line_chart_svg(bench_series(), title="T", x_label="X", y_label="Y", log_x=True)

    assert once() == once()


@pytest.mark.parametrize("log", [False, True])
def test_a_single_point_draws(log: bool) -> None:
    root = render([Series("one", [(5, 7)])], log_x=log, log_y=log)
    assert len(lines(root)) == 1 and len(markers(root)) == 1


def test_flat_series_gets_a_padded_axis() -> None:
    root = render([Series("flat", [(1, 3), (2, 3), (3, 3)])])
    ys = {p.split(",")[1] for p in lines(root)[0].get("points", "").split()}
    assert len(ys) == 1
    assert len([label for label in texts(root) if label in {"2.7", "2.8", "3", "3.2"}]) >= 2


def test_zero_on_a_log_axis_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="y=0.*log y axis"):
        render([Series("s", [(1, 0), (2, 1)])], log_y=True)
    render([Series("s", [(1, 0), (2, 1)])])  # a linear axis shows zero fine


def test_no_series_or_no_points_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one series"):
        render([])
    with pytest.raises(ValueError, match="'empty' has no points"):
        render([Series("empty", [])])


def test_a_long_legend_widens_the_chart_instead_of_squeezing_it() -> None:
    root = render([Series("x" * 150, [(1, 1), (2, 2)])])
    assert int(root.get("width", "0")) > 720
