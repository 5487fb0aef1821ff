-- A participant may be assigned to a room other than the plenary (a breakout); NULL means the plenary.
ALTER TABLE participants ADD COLUMN room_id uuid REFERENCES rooms (id) ON DELETE SET NULL;
CREATE INDEX participants_room ON participants (room_id) WHERE room_id IS NOT NULL;
