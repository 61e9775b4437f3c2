"""Configuration: typed settings, the TOML loader, the checks across keys, printing.

``sections`` and ``recording`` declare the settings of each ``[section]`` (type, default, range,
meaning), ``boards`` what every ``[[boards]]`` table has (each driver declares the rest, next to
its code in ``recorder.drivers``), ``model`` the whole ``Config``, ``values`` the parsers of
values with a syntax of their own (HH:MM, days, e-mail addresses). ``loader`` reads a file
and reports every mistake at once, each naming its key; ``checks`` are the rules that span
keys; ``printing`` writes the effective configuration back as TOML.
"""
