-- zmbatch state database, version 10.
--
-- provision_objects.target_id  the object's zimbraId on the target when it
--                              is not the source's: a target that refuses a
--                              given zimbraId (Carbonio 4.0.7-4.12.0,
--                              CreateAccount.java:59-62; keep_zimbra_id =
--                              "try") makes a new one.  '?' while such a
--                              create is in flight (its id not known yet);
--                              NULL when the source's id was kept.
ALTER TABLE provision_objects ADD COLUMN target_id TEXT;
