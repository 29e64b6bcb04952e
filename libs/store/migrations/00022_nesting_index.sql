-- The group-in-group edges of the mirror, indexed on their own both ways.
-- Every walk through nested groups (the plan's walks down from affected
-- groups and up from affected users, the member counts' walk up from
-- changed edges) takes one step per level through the edges whose member
-- is a group: a few hundred of a large tenant's 200k edges. Without these
-- indexes each step scanned all of the tenant's edges (38 ms a step at
-- 100k users, several steps a statement, several statements a plan).

-- +goose Up
CREATE INDEX dir_members_nesting_down ON dir_members (tenant_id, group_id, member_id) WHERE member_type = 'group';
CREATE INDEX dir_members_nesting_up ON dir_members (tenant_id, member_id, group_id) WHERE member_type = 'group';

-- +goose Down
DROP INDEX dir_members_nesting_up;
DROP INDEX dir_members_nesting_down;
