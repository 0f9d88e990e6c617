"""The columnar audit engine (private): JSON Lines courses in chunks, as Polars columns.

`kaprules.audit` hands this engine the blocks of JSON Lines its reader makes. A chunk of
lines becomes one frame: a line is taken here only when it is certain to be a course the
per-record loader accepts, read to the same values (strict JSON, strings without escapes
or control characters, every key known and given once, instants in the two layouts
exporters write, a zone that exists, unique session ids). Each rule of the protocol then
states, as column operations (its vectorised form, `forms`), at which sessions it may
have a finding. A course taken here without any such session is compliant, and its
result is made from its columns. Every other line (not taken with certainty, or possibly
with a finding) goes through the per-record code, which rejects it or renders its
findings as it always has: so the results are those of the per-record engine, byte for
byte, and a doubt only costs time.

The modules: `columns` (what a vectorised form reads and writes), `forms` (the rules'
vectorised forms, by rule class), `decode` (lines into courses), `zones` (instants and
UTC offsets), `sessions` (a row a session, with the timeline's columns), `findings` (the
forms evaluated, findings assembled), `rows` (findings rows as text) and `engine` (a chunk
into a batch). Polars is imported when a chunk is first read, never by ``import
kaprules``.
"""
