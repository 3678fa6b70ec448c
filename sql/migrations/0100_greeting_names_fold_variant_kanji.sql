-- A surname written with a variant kanji is the same name: 髙橋 is 高橋, 山﨑 is 山崎, 渡邊 and 渡邉
-- are 渡辺. Shops keep whichever form the customer's form or mail gave, and agents type whatever
-- their input method offers, which is almost always the common form. The greeting check compared
-- the two literally, so "高橋様" on 髙橋 一郎's ticket read as another customer's name whenever any
-- 高橋 was on record, and `wrong-customer-name` cannot be overridden: the reply could not be sent.
--
-- `name_variants_folded` maps the variants that appear in Japanese names to their common form, one
-- character for another. NFKC comes first (it already folds the compatibility ideographs, such as
-- U+FA10 塚); the characters here are unified ideographs NFKC leaves alone. A greeting in one form
-- and a customer in the other now match; a greeting of a different name still does not.
CREATE OR REPLACE FUNCTION name_variants_folded(name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT translate(normalize(name, NFKC),
                     '髙﨑嵜碕德邉邊齋齊斉濵濱冨𠮷栁槗桒廣國澤櫻眞藏惠淺曾實壽條嶋嶌峯禮聰增萬黑亞瀨賴靑彌榮將邨舘檜龍',
                     '高崎崎崎徳辺辺斎斎斎浜浜富吉柳橋桑広国沢桜真蔵恵浅曽実寿条島島峰礼聡増万黒亜瀬頼青弥栄将村館桧竜')
$$;

CREATE OR REPLACE FUNCTION customer_greeting_name(display_name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT lower(regexp_replace(name_variants_folded(display_name), '[[:space:]　]', '', 'g'))
$$;

CREATE OR REPLACE FUNCTION customer_name_parts(display_name text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN display_name IS NULL THEN '{}'::text[]
                ELSE array_remove(regexp_split_to_array(lower(name_variants_folded(display_name)), '[[:space:]　]+'), '')
                     || customer_greeting_name(display_name) END
$$;

-- The functions under both indexes changed: the indexes are built again from them.
DROP INDEX IF EXISTS customers_name_parts;
CREATE INDEX customers_name_parts ON customers USING gin (customer_name_parts(display_name))
    WHERE display_name IS NOT NULL;
DROP INDEX IF EXISTS customers_greeting_name;
CREATE INDEX customers_greeting_name ON customers ((customer_greeting_name(display_name) COLLATE "C"))
    WHERE display_name IS NOT NULL;
