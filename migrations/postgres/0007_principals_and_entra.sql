-- People signed in through Entra ID (the Outlook add-in) own uploads and shares as API keys
-- do. What owns something is now a principal: an API key (a principal with the key's id) or
-- a person, known by their Microsoft 365 tenant (tid) and object id (oid) within a Ferry
-- tenant. The same changes as migrations/sqlite/0007_principals_and_entra.sql.
CREATE TABLE principals (
    id               UUID PRIMARY KEY NOT NULL,
    tenant_id        UUID NOT NULL REFERENCES tenants(id),
    kind             TEXT NOT NULL CHECK (kind IN ('api_key', 'entra_user')),
    entra_tenant_id  UUID,              -- people: the token's tid
    entra_object_id  UUID,              -- people: the token's oid (stable, unlike the address)
    address          TEXT,              -- people: the sign-in address last seen
    created_at       TIMESTAMPTZ NOT NULL,
    CHECK ((kind = 'entra_user') = (entra_tenant_id IS NOT NULL AND entra_object_id IS NOT NULL))
);
CREATE UNIQUE INDEX principals_by_entra_user
    ON principals (tenant_id, entra_tenant_id, entra_object_id);
INSERT INTO principals (id, tenant_id, kind, created_at)
    SELECT id, tenant_id, 'api_key', created_at FROM api_keys;

ALTER TABLE uploads DROP CONSTRAINT uploads_owner_key_id_fkey;
ALTER TABLE uploads RENAME COLUMN owner_key_id TO owner_id;
ALTER TABLE uploads ADD CONSTRAINT uploads_owner_id_fkey
    FOREIGN KEY (owner_id) REFERENCES principals(id);
ALTER TABLE shares DROP CONSTRAINT shares_created_by_fkey;
ALTER TABLE shares ADD CONSTRAINT shares_created_by_fkey
    FOREIGN KEY (created_by) REFERENCES principals(id);

-- Which Ferry tenant a Microsoft 365 tenant's people sign in to. One Ferry tenant may have
-- several; a Microsoft 365 tenant belongs to at most one. Linked by the operator
-- (`ferry tenant link-entra`) or by a tenant admin who proves to be a directory admin there.
CREATE TABLE entra_links (
    entra_tenant_id  UUID PRIMARY KEY NOT NULL,
    tenant_id        UUID NOT NULL REFERENCES tenants(id),
    linked_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX entra_links_by_tenant ON entra_links (tenant_id);
