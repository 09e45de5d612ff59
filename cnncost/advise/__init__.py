"""`cnncost advise`: the lectures' design guidelines as rules, each suggestion counted.

``rules.py`` holds one registered function per guideline (``ADVICE_RULES``), ``rewrite.py``
edits the spec's YAML document, ``trunk.py`` reads the network's main path, ``engine.py``
counts every proposed rewrite. Rendering lives in ``cnncost/render/advice.py``.
"""
