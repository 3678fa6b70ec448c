-- Order-system ids typed in full-width ASCII (`ＣＵＳＴ－０００２`) are stored folded from now on
-- (`IdentityValue`); those stored before are folded too, so the order system's lookup by its own id
-- finds them. One that would fold onto an id another identity already has is left as it is: that is
-- two customers for one person, for a supervisor to merge, not a row to overwrite. Its spelling as
-- typed is kept in raw_value. Re-runnable: a second run finds nothing left to fold.
WITH folded AS (
    SELECT id, translate(value, '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～',
                                '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~') AS ascii
    FROM customer_identities
    WHERE kind = 'external' AND value ~ '[\uFF01-\uFF5E]'
), first AS (
    SELECT DISTINCT ON (ascii) id, ascii FROM folded ORDER BY ascii, id
)
UPDATE customer_identities c
SET raw_value = coalesce(c.raw_value, c.value), value = f.ascii
FROM first f
WHERE c.id = f.id
  AND NOT EXISTS (SELECT 1 FROM customer_identities o WHERE o.kind = 'external' AND o.value = f.ascii);
