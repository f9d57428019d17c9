-- chatd schema, version 4: no index leads from a user to their messages.
-- Each post paid for it with an insert, and each commit with a page
-- written to the WAL for nearly every author in it (the index orders the
-- messages by user, so a commit of many people's messages touches as many
-- leaf pages). Only an admin's "delete this user's messages" looked
-- messages up by user: it now scans the table from a reader, outside the
-- writer, and looks again inside its transaction only at the messages
-- posted since the scan (a range of ids).
DROP INDEX messages_user;
