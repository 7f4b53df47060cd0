"""What the report's sections are made of, below the evaluations that own a section and the report
that lays them out: the document's blocks (``blocks``), the statistics over seeds
(``statistics``), experiments and their cells (``experiments``) and the hook by which an
evaluation owns its section (``hook``). No torch."""
