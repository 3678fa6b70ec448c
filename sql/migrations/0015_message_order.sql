-- A timeline is ordered by created_at. now() is the transaction's start, so the several messages one
-- request can write (a LINE webhook carries several) all had the same time and fell in id order;
-- the wall clock at each insert keeps them in the order they were written.
ALTER TABLE messages ALTER COLUMN created_at SET DEFAULT clock_timestamp();
