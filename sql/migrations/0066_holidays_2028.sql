-- Japanese national holidays were shipped through 2027, and the standard calendar's 年末年始
-- through 2028-01-03: from then on, holidays would silently count as working days. 2028 is added
-- (春分の日 and 秋分の日 as the National Astronomical Observatory's calculation gives them; the
-- Cabinet Office confirms each February for the next year), with 2028-12-29 to 2029-01-03 closed
-- where the standard calendar still holds the shipped 年末年始. Later years: RUNBOOK, "Holidays".
INSERT INTO national_holidays (country, day, name) VALUES
    ('jp', '2028-01-01', '元日'), ('jp', '2028-01-10', '成人の日'), ('jp', '2028-02-11', '建国記念の日'),
    ('jp', '2028-02-23', '天皇誕生日'), ('jp', '2028-03-20', '春分の日'), ('jp', '2028-04-29', '昭和の日'),
    ('jp', '2028-05-03', '憲法記念日'), ('jp', '2028-05-04', 'みどりの日'), ('jp', '2028-05-05', 'こどもの日'),
    ('jp', '2028-07-17', '海の日'), ('jp', '2028-08-11', '山の日'), ('jp', '2028-09-18', '敬老の日'),
    ('jp', '2028-09-22', '秋分の日'), ('jp', '2028-10-09', 'スポーツの日'), ('jp', '2028-11-03', '文化の日'),
    ('jp', '2028-11-23', '勤労感謝の日')
ON CONFLICT (country, day) DO NOTHING;

INSERT INTO business_closed_days (calendar_id, day, name)
SELECT '00000000-0000-4000-8000-0000000ca1e0', day::date, '年末年始'
FROM generate_series(date '2028-12-29', date '2029-01-03', interval '1 day') AS day
WHERE EXISTS (SELECT 1 FROM business_closed_days
              WHERE calendar_id = '00000000-0000-4000-8000-0000000ca1e0' AND day = date '2027-12-29' AND name = '年末年始')
ON CONFLICT (calendar_id, day) DO NOTHING;
