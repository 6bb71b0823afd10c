"""Prompt files for batches of panoramas: each prompt keeps its number, seed and folder in any run, shard or selection."""

from __future__ import annotations

import pytest

from engine.errors import BadInput
from engine.world.prompt_lists import parse_numbers, read_prompts, select


def test_prompts_are_numbered_past_blank_lines_and_comments_and_seeded_by_their_number(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("# worlds\na cave\n\n  a beach at dawn  \n# more\na forest\n", encoding="utf-8")
    prompts = read_prompts(path, base_seed=10)
    assert [(p.number, p.text, p.seed, p.folder) for p in prompts] == [
        (1, "a cave", 10, "prompt-0001"),
        (2, "a beach at dawn", 11, "prompt-0002"),
        (3, "a forest", 12, "prompt-0003"),
    ]


def test_a_selection_and_a_shard_keep_each_prompts_number_and_seed(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(f"world {i}" for i in range(1, 11)), encoding="utf-8")
    prompts = read_prompts(path, base_seed=3)
    assert [p.number for p in select(prompts, shard="2/3")] == [2, 5, 8]
    assert [p.number for p in select(prompts, lines="1,5-7")] == [1, 5, 6, 7]
    assert [p.number for p in select(prompts, shard="1/2", lines="1,5-7")] == [1, 5, 7]
    assert select(prompts, lines="7")[0] == prompts[6], "prompt 7 alone is prompt 7 of the whole run"
    shards = [p.number for i in range(1, 5) for p in select(prompts, shard=f"{i}/4")]
    assert sorted(shards) == list(range(1, 11)), "the shards cover every prompt once"
    assert parse_numbers("3, 1-2") == {1, 2, 3}


@pytest.mark.parametrize(
    "text, lines, shard, message",
    [
        ("# only a comment\n\n", "", "", "holds no prompts"),
        ("a\nb\n", "3", "", "there is no line 3"),
        ("a\nb\n", "2-1", "", "ranges go up"),
        ("a\nb\n", "x", "", "numbers and ranges"),
        ("a\nb\n", "", "3/2", "between 1 and N"),
    ],
)
def test_bad_prompt_files_and_selections_are_refused_in_one_line(tmp_path, text, lines, shard, message):
    path = tmp_path / "prompts.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInput, match=message):
        select(read_prompts(path), shard, lines)
