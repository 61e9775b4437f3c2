"""Archive: what happens to stored recordings: exported in any format (``export``), sealed in a
CAV container (``cav``), e-mailed (``mailer``), purged when they expire (``retention``).
"""
