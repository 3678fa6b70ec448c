-- Email identities in one spelling per mailbox (IdentityValue.email): full-width ASCII typed with a
-- Japanese input method as ASCII, and the domain as the relays know it. A web form's
-- `taro@ｅｘａｍｐｌｅ．ｃｏ．ｊｐ` was stored as typed; our reply went to taro@example.co.jp, and the
-- customer's answer from there found no owner and made a second customer, its thread flagged as a
-- foreign sender's. New identities are stored converted; this converts those already stored where
-- SQL can: full-width ASCII folded, the domain lower-cased, when that leaves the domain ASCII. A
-- domain with other characters (日本語.jp) needs its A-label (Punycode), which SQL cannot write: the
-- migrator converts those in Swift, in this migration's transaction (`EmailIdentitySpellings`). An
-- address whose converted form another identity already holds stays, so that no customer loses an
-- identity: the two are the same mailbox, for a person to merge.

WITH converted AS (
    SELECT id, canonical FROM (
        SELECT i.id, f.local || '@' || lower(f.domain) AS canonical,
               row_number() OVER (PARTITION BY f.local || '@' || lower(f.domain) ORDER BY i.created_at, i.id) AS nth
        FROM customer_identities i
        CROSS JOIN LATERAL (SELECT translate(i.value, '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～', '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~') AS folded) AS t
        CROSS JOIN LATERAL (SELECT substring(t.folded FROM '^(.*)@[^@]*$') AS local, substring(t.folded FROM '@([^@]*)$') AS domain) AS f
        WHERE i.kind = 'email' AND i.value ~ '[^[:ascii:]]' AND f.local IS NOT NULL
          AND lower(f.domain) ~ '^[[:ascii:]]*$' AND f.local || '@' || lower(f.domain) <> i.value
    ) AS c
    WHERE c.nth = 1
      AND NOT EXISTS (SELECT FROM customer_identities o WHERE o.kind = 'email' AND o.value = c.canonical)
)
UPDATE customer_identities i SET value = c.canonical
FROM converted c WHERE i.id = c.id;
