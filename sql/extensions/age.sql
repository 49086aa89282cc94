-- Apache AGE, the graph extension Kotte browses.
--
-- Kept apart from the migrations so that a PostgreSQL without AGE (the test
-- suite's Debian PostgreSQL, for one) can still take every other file under
-- sql/. Needs a superuser: CloudNativePG applies it first, as postgres, in
-- the application database (see k8s/base/age-cluster.yaml).
CREATE EXTENSION IF NOT EXISTS age;
