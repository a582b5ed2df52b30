"""The log reader: what a rollout log holds and its rows, streamed in chunks of whole steps.

    format.py        the dvao log format: column names, reserved names, dtype families
    discovery.py     LOG arguments -> files: folders, globs, hive partitions; `LogSource`
    footer.py        Parquet footers decoded without pyarrow; `parquet_file` (pyarrow's)
    spec.py          footers only: schema checks, partition checks, objectives -> `LogSpec`
    combined.py      combined scores (a `score`, a `total`): the one pass over rows at opening
    opening.py       `open_log`: the spec less its combined scores
    stream.py        step floors from the footers; `iter_frames`, `iter_chunks`
    chunk.py         `prepare_chunk` -> `Chunk`: keys, NaN policy, engine order, group sizes
    long_layout.py   the long layout (objective + reward columns) pivoted to the wide one
    memory.py        `read_log` -> `LogData`: a whole log in memory

Every problem with the user's files is an `InputError` naming the file and the column.
"""
