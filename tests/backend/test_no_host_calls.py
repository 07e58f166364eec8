"""Guard: the compute paths never call NumPy directly on arrays, so CuPy arrays stay on the GPU.

Every function in the compute paths (functional ops, layers, models, optimizers) must compute with
``xp = get_array_module(...)``. A stray ``np.exp(x)`` would, on a CuPy array, either fail or pull the array
to the host. This test reads the source (no GPU needed, so it runs in every CI run) and lists every call
``np.<name>(...)`` whose ``<name>`` is not one of the harmless dtype and metadata helpers below.
"""
import ast
import pathlib
import re

import numpy_transformer

PACKAGE = pathlib.Path(numpy_transformer.__file__).parent

#: in these folders every function is compute: the pure forward/backward pairs
FULLY_COMPUTE = ["functional"]
#: in these folders the compute is in the functions named below; constructors (which build parameters on
#: the host before ``.to(device)``) and state_dict conversion (which is host-side by design) are not
PARTLY_COMPUTE = ["nn", "models", "optim"]
COMPUTE_NAME = re.compile(r"forward|backward|step|decode|beam|generate|clip_grad|loss|__call__|_block|next_token|"
                          r"positions_from_mask")

#: numpy attributes that describe dtypes and build nothing: safe on any backend. Math on Python scalars
#: (a head width, a step count) uses the ``math`` module, so that every ``np.`` math call stands out here.
ALLOWED = {
    "dtype", "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool_",
    "integer", "floating", "issubdtype", "finfo", "iinfo", "result_type", "promote_types", "isscalar",
}


def numpy_calls(tree: ast.AST):
    """(line, name, first-argument source) for every call of the form np.<name>(...)."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "np"
        ):
            first = ast.unparse(node.args[0]) if node.args else ""
            yield node.lineno, node.func.attr, first


def compute_functions(tree: ast.AST, everything: bool):
    """The function definitions of a module that run in forward, backward or an optimizer step."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if everything or COMPUTE_NAME.search(node.name):
                yield node


def test_compute_paths_do_not_call_numpy_on_arrays():
    offending = set()
    for folders, everything in ((FULLY_COMPUTE, True), (PARTLY_COMPUTE, False)):
        for folder in folders:
            for path in sorted((PACKAGE / folder).rglob("*.py")):
                tree = ast.parse(path.read_text(), filename=str(path))
                for function in compute_functions(tree, everything):
                    for line, name, first in numpy_calls(function):
                        if name not in ALLOWED:
                            offending.add(f"{path.relative_to(PACKAGE)}:{line} in {function.name}: np.{name}({first})")
    assert not offending, (
        "NumPy called directly in a compute path (use xp = get_array_module(...) instead):\n"
        + "\n".join(sorted(offending))
    )


def test_scanner_catches_a_stray_numpy_call():
    """The guard itself works: a planted np.exp on an array is reported, np.float32 is not."""
    source = "def f(x):\n    y = np.exp(x)\n    return y.astype(np.float32)\n"
    calls = list(numpy_calls(ast.parse(source)))
    assert [(name, first) for _, name, first in calls] == [("exp", "x")]
