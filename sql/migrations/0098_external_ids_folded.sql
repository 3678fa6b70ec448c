-- Order-system ids typed in full-width ASCII (`ＣＵＳＴ－０００２`, an IME left in 全角) are stored folded
-- from now on (`IdentityValue`): kept as typed, one made a second customer that the order system's
-- lookup by its own id never found. This folds those stored before, as 0068 lower-cased email:
-- oldest first, never onto an id another identity already holds, so no customer loses an identity.
-- The spelling as typed is kept in raw_value. An identity left in its full-width spelling is no
-- longer found by any lookup; when another customer holds the folded id, the two are one person, for
-- a supervisor to merge: a `customer.merge_suggested` event says so, once (channel `webform`, where a
-- customer types their member number). Re-runnable: a second run folds and suggests nothing new.

WITH candidates AS (
    SELECT i.id, translate(i.value, '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～',
                                 '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~') AS folded,
           row_number() OVER (PARTITION BY translate(i.value, '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～',
                                                        '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~')
                              ORDER BY i.created_at, i.id) AS nth
    FROM customer_identities i
    WHERE i.kind = 'external' AND i.value ~ '[\uFF01-\uFF5E]'
)
UPDATE customer_identities i SET raw_value = coalesce(i.raw_value, i.value), value = c.folded
FROM candidates c
WHERE i.id = c.id AND c.nth = 1
  AND NOT EXISTS (SELECT FROM customer_identities o WHERE o.kind = 'external' AND o.value = c.folded);

INSERT INTO events (type, customer_id, data)
SELECT 'customer.merge_suggested', left_over.customer_id,
       jsonb_build_object('other_customer_id', holder.customer_id, 'kind', 'external', 'value', left_over.value, 'channel', 'webform')
FROM customer_identities left_over
JOIN customer_identities holder
  ON holder.kind = 'external'
 AND holder.value = translate(left_over.value, '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～',
                           '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~')
WHERE left_over.kind = 'external' AND left_over.value ~ '[\uFF01-\uFF5E]'
  AND holder.customer_id <> left_over.customer_id
  -- Run again, it suggests nothing twice.
  AND NOT EXISTS (SELECT FROM events e
                  WHERE e.type = 'customer.merge_suggested' AND e.customer_id = left_over.customer_id
                    AND e.data ->> 'value' = left_over.value AND e.data ->> 'other_customer_id' = holder.customer_id::text)
ORDER BY left_over.created_at, left_over.id;
