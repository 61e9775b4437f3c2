"""The API's protocol: XML in and out (``xmlcodec``), request parameters and their limits
(``params``, ``fields``, ``webparams``), the manual's date forms (``datetimes``) and
permission names (``permissions``). No sockets, no threads.
"""
