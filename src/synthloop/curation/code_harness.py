"""The two programs behind an unforgeable test verdict (stdlib only: it runs under the sandbox's Python).

`serve SOLUTION IN OUT`: runs the candidate solution, then answers calls into it over two pipes.
`test TESTS IN OUT RESULT`: runs the tests with every top-level name of the solution bound to a proxy
that calls into the serving process, and writes PASS on its own result pipe after the last test line.
Every argument is a descriptor the parent opened: the solution and the tests come in through in-memory
files with no path, so the code cannot read the tests (and hard-code their answers) or change them.

The candidate's code never runs in the testing process, so nothing it does (ending its process early,
`SystemExit`, patching the harness, tracing, printing what a pass looks like) can reach the verdict.
Values cross as plain data of exact built-in types; anything else stays in the serving process and
crosses as a handle. A handle never compares equal to plain data, so an object whose `__eq__` always
says True cannot stand in for an expected value."""

import builtins
import json
import math
import os
import sys
import types

MAX_MESSAGE = 4 * 1024 * 1024
MAX_CALLS = 100_000
MAX_DEPTH = 100
SHADOWED = 3  # the testing process's status when the solution redefines a built-in the tests use
DUNDERS = {
    "__len__", "__iter__", "__next__", "__getitem__", "__setitem__", "__delitem__", "__contains__", "__bool__",
    "__str__", "__repr__", "__hash__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__add__",
    "__sub__", "__mul__", "__truediv__", "__floordiv__", "__mod__", "__pow__", "__neg__", "__abs__", "__enter__",
    "__exit__", "__radd__", "__rsub__", "__rmul__",
}  # fmt: skip


class TooDeep(ValueError):
    pass


def encode(value, handle_of, depth=0):
    """Plain data of exact built-in types as JSON; anything else through `handle_of`."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if depth > MAX_DEPTH:
        raise TooDeep("value nested too deeply")

    def inner(item):
        return encode(item, handle_of, depth + 1)

    if kind is list:
        return [inner(v) for v in value]
    if kind in (tuple, set, frozenset):
        return {kind.__name__: [inner(v) for v in value]}
    if kind is dict:
        return {"dict": [[inner(k), inner(v)] for k, v in value.items()]}
    if kind is bytes:
        return {"bytes": value.hex()}
    if kind is complex:
        return {"complex": [value.real, value.imag]}
    return {"handle": handle_of(value)}


def decode(data, object_of):
    if isinstance(data, list):
        return [decode(v, object_of) for v in data]
    if not isinstance(data, dict):
        return data
    (tag, body), *_ = data.items()
    if tag == "handle":
        return object_of(body)
    if tag == "float":
        return float(body)
    if tag == "bytes":
        return bytes.fromhex(body)
    if tag == "complex":
        return complex(*body)
    if tag == "dict":
        return {decode(k, object_of): decode(v, object_of) for k, v in body}
    return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](decode(v, object_of) for v in body)


class Channel:
    def __init__(self, read_fd, write_fd):
        self.reader, self.write_fd = os.fdopen(read_fd, "rb"), write_fd

    def send(self, message):
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        if len(data) > MAX_MESSAGE:
            raise ValueError(f"a value of {len(data)} bytes is too large to pass")
        view = memoryview(data)
        while view:
            view = view[os.write(self.write_fd, view) :]

    def receive(self):
        """The next message, or None when the other side ended or sent what is not one: a bad line must
        never surface in the tests as an exception they may be waiting for (JSON errors are ValueErrors)."""
        line = self.reader.readline(MAX_MESSAGE + 1)
        if not line.endswith(b"\n"):
            return None
        try:
            return json.loads(line)
        except (ValueError, RecursionError):
            return None


# --- the serving side: runs the candidate ---


def serve(solution_fd, read_fd, write_fd):
    channel, objects, handles = Channel(read_fd, write_fd), {}, {}

    def handle_of(value):
        if id(value) not in handles:
            handles[id(value)] = len(objects)
            objects[len(objects)] = value
        return handles[id(value)]

    def reply(compute):
        try:
            value = compute()
            try:
                return {"ok": encode(value, handle_of)}
            except TooDeep:
                return {"ok": {"handle": handle_of(value)}}
        except Exception as error:  # the candidate's exception, as its nearest built-in kind, back to the tests
            kind = next(c for c in type(error).__mro__ if getattr(builtins, c.__name__, None) is c)
            return {"raised": [kind.__name__, str(error)[:2000]]}

    namespace = {"__name__": "solution", "__builtins__": builtins}
    with os.fdopen(solution_fd, encoding="utf-8") as source:
        code = source.read()
    loaded = reply(lambda: exec(compile(code, "solution.py", "exec"), namespace))
    if "raised" in loaded:
        channel.send(loaded)
        return 1
    names = {k: v for k, v in namespace.items() if not k.startswith("__") and not isinstance(v, types.ModuleType)}
    channel.send(reply(lambda: names))
    while (request := channel.receive()) is not None:
        channel.send(answer(request, objects, handle_of, reply))
    return 0


def answer(request, objects, handle_of, reply):
    def object_of(handle):
        return objects[handle]

    target = objects[request["h"]]
    args = decode(request.get("args", []), object_of)
    kwargs = {k: v for k, v in decode(request.get("kw", []), object_of)}
    op, name = request["op"], request.get("name", "")
    if op == "call":
        result = reply(lambda: target(*args, **kwargs))
    elif op == "getattr":
        result = reply(lambda: getattr(target, name))
    elif op == "setattr":
        result = reply(lambda: setattr(target, name, args[0]))
    elif op == "dunder" and name in DUNDERS:
        result = reply(lambda: special(target, name)(target, *args))
    else:
        result = {"raised": ["TypeError", f"unsupported operation {op} {name}"]}
    result["args"] = reply(lambda: args).get("ok")  # so in-place changes reach the tests
    return result


def special(target, name):
    method = getattr(type(target), name, None)
    if method is None:  # as Python itself says it (len() of a generator is a TypeError)
        raise TypeError(f"'{type(target).__name__}' object does not support {name}")
    return method


# --- the testing side: never runs candidate code ---


class SolutionGone(BaseException):
    """The serving process ended, broke the protocol or made too many calls: the tests cannot go on."""


class Remote:
    """A value that lives in the serving process."""

    __slots__ = ("_client", "_handle")

    def __init__(self, handle, client):
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_client", client)

    def __getattr__(self, name):
        return self._client.request("getattr", self, name)

    def __setattr__(self, name, value):
        self._client.request("setattr", self, name, [value])

    def __call__(self, *args, **kwargs):
        return self._client.request("call", self, "", list(args), kwargs)

    def _compare(self, name, other):
        if not isinstance(other, Remote):
            return NotImplemented  # a handle never equals plain data: no always-equal stand-ins
        return self._client.request("dunder", self, name, [other])

    def __eq__(self, other):
        return self._compare("__eq__", other)

    def __ne__(self, other):
        result = self._compare("__eq__", other)
        return result if result is NotImplemented else not result

    def __lt__(self, other):
        return self._compare("__lt__", other)

    def __le__(self, other):
        return self._compare("__le__", other)

    def __gt__(self, other):
        return self._compare("__gt__", other)

    def __ge__(self, other):
        return self._compare("__ge__", other)

    def __hash__(self):
        return self._client.request("dunder", self, "__hash__")


def forward(name):
    def method(self, *args):
        return self._client.request("dunder", self, name, list(args))

    method.__name__ = name
    return method


for _name in DUNDERS - set(vars(Remote)):
    setattr(Remote, _name, forward(_name))


class Client:
    def __init__(self, channel):
        self.channel, self.remotes, self.calls = channel, {}, 0

    def object_of(self, handle):
        if handle not in self.remotes:
            self.remotes[handle] = Remote(handle, self)
        return self.remotes[handle]

    def handle_of(self, value):
        if isinstance(value, Remote):
            return value._handle
        raise TypeError(f"a {type(value).__name__} cannot be passed to the solution (plain data only)")

    def request(self, op, target, name="", args=(), kwargs=None):
        self.calls += 1
        if self.calls > MAX_CALLS:
            raise SolutionGone(f"more than {MAX_CALLS} calls into the solution")
        kw = encode(list((kwargs or {}).items()), self.handle_of)
        self.channel.send({"op": op, "h": target._handle, "name": name, "args": encode(list(args), self.handle_of),
                           "kw": kw})  # fmt: skip
        return self.result(self.channel.receive(), args, stops=op == "dunder" and name == "__next__")

    def result(self, message, args=(), stops=False):
        if not isinstance(message, dict):
            raise SolutionGone("the solution's process ended or broke the protocol")
        try:
            self.sync(args, message.get("args"))
            if "ok" in message:
                return decode(message["ok"], self.object_of)
            name, text = message["raised"]
        except SolutionGone:
            raise
        except Exception as error:
            raise SolutionGone(f"the solution's process broke the protocol: {error}") from None
        error = getattr(builtins, str(name), None)
        if error in (StopIteration, StopAsyncIteration) and not stops:
            # only an iterator's __next__ may end an iteration: raised from a plain call, it would end
            # the tests' own map() or generator early, and all() of nothing is True
            raise RuntimeError(f"{name} raised by the solution: {text}")
        if isinstance(error, type) and issubclass(error, Exception):
            raise error(text)
        raise RuntimeError(f"{name}: {text}")

    def sync(self, args, changed):
        """A list, dict or set the solution changed in place is changed here too."""
        if not changed:
            return
        for mine, theirs in zip(args, decode(changed, self.object_of), strict=False):
            if type(mine) is list and type(theirs) is list:
                mine[:] = theirs
            elif type(mine) in (dict, set) and type(theirs) is type(mine):
                mine.clear()
                mine.update(theirs)


def test(tests_fd, read_fd, write_fd, result_fd):
    client = Client(Channel(read_fd, write_fd))
    try:
        names = client.result(client.channel.receive())
    except SolutionGone:
        print("the solution did not load: its process ended", file=sys.stderr)
        return 1
    except Exception as error:
        print(f"the solution did not load: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    if not isinstance(names, dict) or not all(
        isinstance(n, str) and n.isidentifier() and not n.startswith("__") for n in names
    ):  # __name__, __builtins__: the tests' own
        print("the solution's process sent names the tests cannot use", file=sys.stderr)
        return 1
    module = types.ModuleType("solution")
    module.__dict__.update(names)
    sys.modules["solution"] = module
    sys.argv = ["tests.py"]  # unittest.main() reads it
    main = types.ModuleType("__main__")  # the tests are the main module: unittest.main() finds their cases
    main.__dict__.update({**names, "__name__": "__main__", "__builtins__": builtins})
    sys.modules["__main__"] = main
    namespace = main.__dict__
    with os.fdopen(tests_fd, encoding="utf-8") as source:
        code = compile(source.read(), "tests.py", "exec")
    shadowed = sorted(set(names) & set(vars(builtins)) & names_used(code))
    if shadowed:  # `abs`, `sorted`... redefined: the tests would check the solution against itself
        print(f"the solution redefines built-in names the tests use: {', '.join(shadowed)}", file=sys.stderr)
        return SHADOWED
    try:
        exec(code, namespace)
        for test_function in pytest_style_tests(namespace):
            test_function()
    except SystemExit as done:  # a test script may end itself; only a clean end is a pass
        if done.code not in (0, None):
            raise
    os.write(result_fd, b"PASS\n")
    return 0


def pytest_style_tests(namespace):
    """The `test*` functions the tests define without parameters: called after the script, so a file
    of pytest-style tests is not a pass that ran nothing."""
    for name, value in list(namespace.items()):
        if not (name.startswith("test") and isinstance(value, types.FunctionType)):
            continue
        if value.__globals__ is namespace and value.__code__.co_argcount == 0 and not value.__code__.co_kwonlyargcount:
            yield value


def names_used(code):
    """Every name the tests' code (and the functions and comprehensions in it) looks up."""
    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= names_used(const)
    return found


if __name__ == "__main__":
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)  # factorial(2000) is a plain answer
    role, *fds = sys.argv[1:]
    sys.exit((serve if role == "serve" else test)(*map(int, fds)))
