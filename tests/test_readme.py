"""The README's results are copies of the benchmark result files, not typed-in numbers."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _results_section() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Results\n")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def test_every_results_table_row_in_the_readme_comes_from_a_result_file():
    result_lines = set()
    for path in (REPO / "benchmarks" / "results").rglob("*.md"):
        result_lines.update(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    rows = [line.strip() for line in _results_section().splitlines() if line.startswith("|")]
    assert len(rows) >= 20, "the results section lost its tables"
    missing = [row for row in rows if row not in result_lines]
    assert not missing, "README rows not found in benchmarks/results/*.md (rerun the benchmark, copy its rows):\n" + "\n".join(missing)


def test_every_figure_and_link_in_the_results_section_exists():
    import re

    targets = re.findall(r"\]\((benchmarks/results/[^)]+)\)", _results_section())
    assert targets
    assert [t for t in targets if not (REPO / t).exists()] == []
