-- The Beijing date of the approval decision, which may precede the moment
-- it was recorded (approvals made on paper before the platform went live).
ALTER TABLE ledgers ADD COLUMN approved_on date;
UPDATE ledgers SET approved_on = (approved_at AT TIME ZONE 'Asia/Shanghai')::date
    WHERE approved_at IS NOT NULL;
