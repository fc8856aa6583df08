-- The user-profile table Debezium captures into the `user_profiles` topic.
CREATE TABLE user_profiles (
    user_id      text PRIMARY KEY
                 CHECK (user_id ~ '^[A-Za-z0-9._:@-]+$' AND length(user_id) <= 128),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 256),
    country      text CHECK (country ~ '^[A-Z]{2}$'),
    birth_year   smallint CHECK (birth_year BETWEEN 1900 AND 2100),
    signup_time  timestamptz NOT NULL DEFAULT now(),
    preferences  jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Updates and deletes carry the whole old row, so a delete event still names every field.
ALTER TABLE user_profiles REPLICA IDENTITY FULL;

-- Debezium reads this publication (pgoutput) and does not need to own it.
CREATE PUBLICATION tunelake_user_profiles FOR TABLE user_profiles;
