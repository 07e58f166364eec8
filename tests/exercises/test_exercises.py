"""The exercises: init writes the gaps, check fails them blank, passes the reference, and catches wrong backwards
with a message that names the wrong gradient."""
import ast
import pathlib
import re
import textwrap

import pytest

from numpy_transformer.book.contents import ordered_modules, source_path
from numpy_transformer.exercises import all_exercises, check, exercise_source, find_exercises, init
from numpy_transformer.exercises.__main__ import main
from numpy_transformer.exercises.cases import cases_for
from reference import require

ROOT = pathlib.Path(__file__).resolve().parents[2]


def fill(directory: pathlib.Path, module: str, function: str, body: str) -> None:
    """Write ``body`` into the gap of ``function`` in the exercise file ``module``.py."""
    path = directory / f"{module}.py"
    source = path.read_text()
    gap = re.compile(rf'^(?P<indent>\s*)raise NotImplementedError\("{function}: not written yet"\)$', re.M)
    match = gap.search(source)
    assert match, f"no gap for {function} in {path}"
    body = "import numpy as np\n" + textwrap.dedent(body).strip("\n")
    code = textwrap.indent(body, match.group("indent"))
    path.write_text(source[:match.start()] + code + source[match.end():])


def line_of(results, function):
    return next(r for r in results if r.exercise.function == function)


@pytest.fixture(scope="module")
def blank(tmp_path_factory):
    directory = tmp_path_factory.mktemp("exercises")
    init(directory)
    return directory


def test_every_marked_function_is_a_backward_pass_with_cases():
    exercises = all_exercises()
    assert len(exercises) >= 17
    modules = [e.module for e in exercises]
    order = ordered_modules("functional")
    assert modules == sorted(modules, key=order.index), "exercises follow the reading order"
    for exercise in exercises:
        assert exercise.function.endswith("_backward"), exercise
        assert cases_for(exercise.function), f"{exercise.function} has markers but no grading cases"
    # a functional file without markers is simply not an exercise; every backward pass here has one
    for module in order:
        tree = ast.parse(source_path("functional", module).read_text())
        backward = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.endswith("_backward")}
        marked = {e.function for e in exercises if e.module == module}
        assert marked <= backward


def test_init_removes_every_body_and_keeps_the_rest(blank):
    for exercise in all_exercises():
        reference = source_path("functional", exercise.module).read_text()
        written = (blank / f"{exercise.module}.py").read_text()
        compile(written, exercise.module, "exec")
        assert reference.splitlines()[exercise.begin_line - 1] in written.splitlines()   # the marker, kept
        assert f'raise NotImplementedError("{exercise.function}: not written yet")' in written
        body = reference.splitlines()[exercise.begin_line:exercise.end_line - 1]
        code = [line for line in body if line.strip() and not line.strip().startswith("#")]
        function_text = ast.get_source_segment(written, next(
            n for n in ast.parse(written).body if isinstance(n, ast.FunctionDef) and n.name == exercise.function))
        assert not any(line in function_text.splitlines() for line in code if len(line.strip()) > 12), \
            f"{exercise.function}: a line of the reference body is still in the exercise"
        assert "from .." not in written and "from ." not in written.replace("from numpy_transformer.", "")
    readme = (blank / "README.md").read_text()
    assert "python -m numpy_transformer.exercises check" in readme


def test_init_never_overwrites_work(blank, capsys):
    with pytest.raises(FileExistsError, match="directory"):
        init(blank)
    assert main(["init", str(blank)]) == 2


def test_blank_exercises_all_fail(blank, capsys):
    results = check(blank, torch=None)
    assert [r.status for r in results] == ["not written yet"] * len(results)
    assert main(["check", str(blank), "--no-torch"]) == 1
    out = capsys.readouterr().out
    assert "softmax_backward" in out and f"0 of {len(results)} passed" in out


def test_an_empty_gap_fails(tmp_path):
    init(tmp_path)
    fill(tmp_path, "layernorm", "layernorm_backward", "pass")
    fill(tmp_path, "linear", "linear_backward", "return None, None, None")
    results = check(tmp_path, torch=None)
    assert line_of(results, "layernorm_backward").line().split(None, 1)[1].startswith(
        "WRONG: returned 1 gradient(s); expected 3: dx, dgamma, dbeta")
    assert "WRONG: dx is None; expected an array of shape (2, 3, 4), the shape of x" in \
        line_of(results, "linear_backward").line()


def test_the_reference_passes(tmp_path, capsys):
    require("torch")
    init(tmp_path, solutions=True)
    status = main(["check", str(tmp_path)])
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert sorted(lines) == sorted(e.function for e in all_exercises())
    for line in lines.values():
        assert line.split(None, 1)[1].startswith("passed: "), line
        assert "finite differences and PyTorch float64 and float32" in line, line
    assert status == 0 and f"{len(lines)} of {len(lines)} passed" in out


WRONG = {
    "the softmax row sum left out": ("softmax", "softmax_backward", """
        return dout * cache["y"]
        """, r"WRONG: worst relative error dx [0-9.e+-]+ against finite differences"),
    "a softmax backward divided by the batch size": ("softmax", "softmax_backward", """
        y, axis = cache["y"], cache["axis"]
        return y * (dout - (dout * y).sum(axis=axis, keepdims=True)) / y.shape[0]
        """, r"WRONG: worst relative error dx"),
    "a transposed weight gradient": ("linear", "linear_backward", """
        x2d, weight = cache["x2d"], cache["weight"]
        dout2d = dout.reshape(x2d.shape[0], weight.shape[0])
        dx = (dout2d @ weight).reshape(cache["lead_shape"] + (weight.shape[1],))
        dbias = dout2d.sum(axis=0) if cache["has_bias"] else None
        return dx, x2d.T @ dout2d, dbias
        """, r"WRONG: dweight has shape \(4, 5\); expected \(5, 4\), the shape of weight"),
    "layer norm without the scale term": ("layernorm", "layernorm_backward", """
        xhat, rstd, gamma = cache["xhat"], cache["rstd"], cache["gamma"]
        axes = tuple(range(dout.ndim - 1))
        dxhat = dout * gamma
        dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True))
        return dx, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)
        """, r"WRONG: worst relative error dx [0-9.e+-]+ against finite differences"),
    "an embedding gradient that drops repeated ids": ("embedding", "embedding_backward", """
        ids = cache["ids"]
        dweight = np.zeros((cache["num_embeddings"], dout.shape[-1]), dtype=cache["weight_dtype"])
        dweight[ids.reshape(-1)] += dout.reshape(-1, dout.shape[-1])
        if cache["padding_idx"] is not None:
            dweight[cache["padding_idx"]] = 0
        return dweight
        """, r"WRONG: worst relative error dweight [0-9.e+-]+ against finite differences .*repeated ids"),
    "attention with the scale left off dq": ("attention", "scaled_dot_product_attention_backward", """
        q_scaled, k, v = cache["q_scaled"], cache["k"], cache["v"]
        dv = np.swapaxes(cache["dropped"], -1, -2) @ dout
        dweights = dout @ np.swapaxes(v, -1, -2)
        if cache["keep_scale"] is not None:
            dweights = dweights * cache["keep_scale"]
        dscores = cache["weights"] * (dweights - (dout * cache["out"]).sum(axis=-1, keepdims=True))
        return dscores @ k, np.swapaxes(dscores, -1, -2) @ q_scaled, dv
        """, r"WRONG: worst relative error dq [0-9.e+-]+ against finite differences"),
    "cross-entropy averaged over every position, ignored ones included": ("losses", "cross_entropy_backward", """
        probs, targets, valid = cache["probs"], cache["targets"], cache["valid"]
        eps, vocab = cache["label_smoothing"], probs.shape[-1]
        dlogits = probs - eps / vocab
        flat = dlogits.reshape(-1, vocab)
        flat[np.arange(flat.shape[0]), targets.reshape(-1)] -= 1.0 - eps
        return dlogits * (dloss / valid.size) * valid[..., None]
        """, r"WRONG: worst relative error dlogits"),
    "a GELU backward that differentiates the other approximation": ("activations", "gelu_backward", """
        x, t = cache["x"], np.tanh(np.sqrt(2 / np.pi) * (cache["x"] + 0.044715 * cache["x"] ** 3))
        local = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x * x)
        return dout * local
        """, r'WRONG: worst relative error dx [0-9.e+-]+ against finite differences .*approximate="none"'),
    "a float32 gradient turned into float64": ("dropout", "dropout_backward", """
        mask = cache["mask"]
        return dout if mask is None else dout * mask.astype(np.float64)
        """, r"WRONG: dx has dtype float64; expected float32"),
}


@pytest.mark.parametrize("label", sorted(WRONG))
def test_a_wrong_backward_is_caught(tmp_path, label):
    module, function, body, message = WRONG[label]
    if "float32" in label:
        require("torch")   # the float32 pass is the PyTorch comparison
    init(tmp_path)
    fill(tmp_path, module, function, body)
    result = line_of(check(tmp_path), function)
    assert re.search(message, result.line()), result.line()


def test_a_file_that_does_not_import_is_reported(tmp_path):
    init(tmp_path)
    fill(tmp_path, "heads", "split_heads_backward", "return merge_heads_forward(dout)[0")
    results = check(tmp_path, torch=None)
    for function in ("split_heads_backward", "merge_heads_backward"):
        assert line_of(results, function).status == "ERROR"
        assert "heads.py does not import: SyntaxError" in line_of(results, function).message
    assert line_of(results, "linear_backward").status == "not written yet"


def test_an_error_in_the_gap_names_the_line(tmp_path):
    init(tmp_path)
    fill(tmp_path, "positional", "positional_encoding_backward", "return dout + cache['table']")
    result = line_of(check(tmp_path, torch=None), "positional_encoding_backward")
    assert result.status == "ERROR" and re.search(r"KeyError: 'table' \(line \d+ of positional.py\)", result.message)


def test_markers_must_pair_up():
    source = "def f_backward(dout, cache):\n    # EXERCISE: x\n    return dout\n"
    with pytest.raises(ValueError, match="without '# END EXERCISE'"):
        find_exercises(source, "m")
    with pytest.raises(ValueError, match="without an EXERCISE marker"):
        find_exercises("def f(x):\n    return x\n    # END EXERCISE\n", "m")
    two = ("def f(x):\n    # EXERCISE: a\n    y = x\n    # END EXERCISE\n"
           "    # EXERCISE: b\n    return y\n    # END EXERCISE\n")
    with pytest.raises(ValueError, match="a second exercise region"):
        find_exercises(two, "m")
    assert exercise_source("import math\n", "m").endswith("import math\n")   # no markers: not an exercise


def test_the_readme_example_is_what_check_prints(tmp_path, capsys):
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"```\n(softmax_backward .*)\n```", readme).group(1)
    init(tmp_path)
    fill(tmp_path, "softmax", "softmax_backward", 'return dout * cache["y"]')
    main(["check", str(tmp_path), "--no-torch"])
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("softmax_backward ")]
    assert [" ".join(line.split()) for line in printed] == [" ".join(example.split())]
