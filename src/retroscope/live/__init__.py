"""At the experiment: answers for files as they land, and a page that shows them.

- :mod:`.store`: the results table (SQLite), one row per answer, keyed by file and
  modification time, so that a restarted watcher never answers a file twice.
- :mod:`.watch`: ``retroscope watch RUN DIR``: waits for each new file to be complete, reads
  it with the run's task, answers it with the run's network and appends the rows; a corrupt
  or half-written file is retried once, then recorded with its error.
- :mod:`.trend`: the fit of an answer's history that a task asks for (``Task.live_trend``),
  e.g. the exponential decay of an ion number in a reaction.
- :mod:`.server`: ``retroscope serve RUN DIR``: a local web page of the latest answer, its
  interval and OOD flag, the history with its trend, and the last rows.
"""
