"""The one exception type the data layer raises for problems a person can fix.

Every message names the folder or file at fault and says what to do, so the command line and
the UI can show it as is, without a traceback.
"""


class DatasetError(ValueError):
    """A data folder, image or mask the program cannot use, with a message a person can act on."""
