"""Launch commands: every flag written is in the engine version's own flag list (kept with its source), every
fixed value is one of the parser's choices, and the GPUs the commands start are the chips of the answer."""

from __future__ import annotations

import itertools
import json
import re
import shlex

import pytest

import costmodel as cm
from costmodel.cli import main
from costmodel.launch import ENGINES, LaunchPlan, Pool, engine_flags, launch_command
from costmodel.launch.plan import checkpoint_of

YAML_KEY = re.compile(r"^(\s*)([\w.]+):")


def commands(text: str) -> list[list[str]]:
    """The shell commands of ``text`` (comments and here-documents left out), as argument lists."""
    out, in_doc = [], False
    for block in text.replace("\\\n", " ").splitlines():
        if in_doc:
            in_doc = block.strip() != "EOF"
            continue
        if block.startswith("cat >"):
            in_doc = True
            continue
        if block.strip() and not block.startswith("#"):
            out.append(shlex.split(block))
    return out


def yaml_keys(text: str) -> list[str]:
    """Dotted keys of the here-documents' YAML."""
    keys, stack, in_doc = [], [], False
    for line in text.splitlines():
        if line.startswith("cat >"):
            in_doc, stack = True, []
            continue
        if in_doc and line.strip() == "EOF":
            in_doc = False
            continue
        m = YAML_KEY.match(line) if in_doc else None
        if m:
            depth = len(m[1]) // 2
            stack = stack[:depth] + [m[2]]
            keys.append(".".join(stack))
    return keys


def check(text: str, engine: str) -> None:
    f = engine_flags(engine)
    yaml_allowed = {part.split()[0] for key, value in f.notes if key == "yaml" for part in value.split(",")}
    yaml_allowed |= {k.rsplit(".", 1)[0] for k in yaml_allowed}
    words = shlex.split(f.command)
    prefix = words[: next(i for i, w in enumerate(words) if w.startswith("--") or w == "MODEL")]
    for argv in commands(text):
        assert argv[: len(prefix)] == prefix, (argv, f.command)  # the engine's own launcher
        argv = argv[len(prefix):]
        flags = [a for a in argv if a.startswith("-")]
        assert flags, argv
        for i, a in enumerate(argv):
            if not a.startswith("-"):
                continue
            assert a in f.flags, f"{engine} {f.version} has no flag {a}"
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else None
            if a in f.choices and value is not None:
                allowed = {c.split()[0].lower() for c in f.choices[a]}
                assert value.lower() in allowed, (a, value)
            if value and value.startswith("{"):
                conf = json.loads(value)
                fields = {part.strip() for key, v in f.notes if key == f"json {a}" for part in v.split("(")[0].split(",")}
                assert set(conf) <= fields, (a, conf, fields)
                for k, v in conf.items():
                    if f"{a}.{k}" in f.choices:
                        assert str(v) in {c.split()[0] for c in f.choices[f"{a}.{k}"]}, (a, k, v)
    for key in yaml_keys(text):
        assert key in yaml_allowed, f"{engine}: YAML key {key} is not among the options file's keys"


def gpus_started(text: str, engine: str) -> int:
    """GPUs the commands start, replicas included (from the degree flags and the replica notes)."""
    total = 0
    lines = text.splitlines()
    for argv in commands(text):
        opt = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
        if engine == "vllm":
            n = int(opt["--tensor-parallel-size"]) * int(opt.get("--pipeline-parallel-size", 1)) \
                * int(opt.get("--data-parallel-size", 1))
        elif engine == "sglang":
            n = int(opt["--tp-size"]) * int(opt.get("--pp-size", 1))
        else:
            n = int(opt["--tp_size"]) * int(opt.get("--pp_size", 1))
        total += n
    for line in lines:  # "# replicas: run 3 instances like this one (8 GPUs each)"
        m = re.search(r"run (\d+) instances like this one \((\d+) GPUs each\)", line)
        if m:
            total += (int(m[1]) - 1) * int(m[2])
    return total


PLANS = [
    LaunchPlan(m, checkpoint_of(m), cm.load_model(m).native_precision, w, kv, pools, spec, "test")
    for m, w, kv, pools, spec in [
        ("llama-3-70b", "bf16", "bf16", (Pool(None, 8, 1, 1, 2, max_seqs=128, chunk_tokens=2048),), None),
        ("llama-3-70b", "fp8", "fp8", (Pool(None, 4, 2, 1, 1),), {"draft": "llama-3.1-8b", "length": 3}),
        ("deepseek-v3", "fp8", "bf16", (Pool(None, 1, 1, 8, 3, max_seqs=256),), {"draft": "mtp", "length": 1}),
        ("deepseek-v3", "fp8", "fp8", (Pool("prefill", 8, 1, 1, 2, chunk_tokens=8192), Pool("decode", 2, 1, 8, 1)),
         {"draft": "mtp", "length": 2}),
        ("mixtral-8x7b", "int4", "fp4", (Pool(None, 2, 1, 1, 1),), None),
        ("palm-540b", "bf16", "bf16", (Pool(None, 64, 1, 1, 1),), None),  # no Hugging Face checkpoint
        ("deepseek-v3", "fp8", "bf16", (Pool(None, 8, 1, 1, 1, batch_sharded_attention=True),), None),
    ]
]


@pytest.mark.parametrize("plan, engine", list(itertools.product(PLANS, ENGINES)))
def test_every_flag_is_the_engines_own_and_the_gpus_are_the_answers(plan, engine):
    text = launch_command(plan, engine)
    check(text, engine)
    assert gpus_started(text, engine) == sum(p.gpus * p.replicas for p in plan.pools)
    assert (plan.checkpoint or "MODEL") in text
    if plan.checkpoint is None:
        assert "# MODEL: the checkpoint of palm-540b" in text
    assert ("shards attention by batch" in text) == any(p.batch_sharded_attention for p in plan.pools)


def test_the_readme_serving_example_emits_commands_a_user_can_run(capsys):
    argv = ["optimize", "--model", "llama-3-70b", "--isl", "8192", "--osl", "512", "--rate", "4", "--ttft-ms",
            "2000", "--tpot-ms", "30", "--max-chips", "64"]
    assert main([*argv, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    for engine in ENGINES:
        assert main([*argv, "--emit", engine]) == 0
        text = capsys.readouterr().out
        check(text, engine)
        assert gpus_started(text, engine) == answer["chips"]
    assert main([*argv, "--emit", "vllm", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["launch"].count("vllm serve meta-llama/Meta-Llama-3-70B") >= 1 and d["chips"] == answer["chips"]


def test_the_decode_answer_launches_its_batch_and_python_says_the_same(capsys):
    s = cm.optimize("llama-3-8b", "h100-sxm", context=4096, tpot_s=0.02, max_chips=8)
    text = s.launch("vllm")
    c = s.choice.config(s.problem)
    assert f"--max-num-seqs {c['batch']}" in text and f"--tensor-parallel-size {c['tp']}" in text
    assert main(["optimize", "--model", "llama-3-8b", "--context", "4096", "--tpot-ms", "20", "--max-chips", "8",
                 "--emit", "vllm"]) == 0
    assert capsys.readouterr().out == text


def test_nothing_to_launch_is_a_one_line_refusal(capsys):
    assert main(["optimize", "--tpot-ms", "0.5", "--emit", "vllm"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("costmodel optimize: error: nothing to launch") and len(err.splitlines()) == 1
    with pytest.raises(cm.ConfigError, match="engine must be one of vllm, sglang, trtllm"):
        launch_command(PLANS[0], "tgi")
