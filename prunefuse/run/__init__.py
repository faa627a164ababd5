"""One run: its parameters, profiles and readings (``config``), the run loop (``experiment``,
``steps``), the one charging rule (``charges``), the run record (``records``, with ``stats``
for its mean ± sd), the machine a record ran on (``blocks``), a batch's cost before it runs
(``estimate``), the labeling loop for your own images (``label``) and the rules for records of
earlier revisions (``legacy``)."""
