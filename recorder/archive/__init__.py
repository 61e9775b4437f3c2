"""Archive: what happens to stored recordings: exported in any format (``export``) in a work
area with a byte budget that never takes the live recordings' room (``workspace``), sealed in a
CAV container (``cav``), e-mailed (``mailer``), purged when they expire (``retention``).
"""
