package pebble

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	cpebble "github.com/cockroachdb/pebble/v2"
	"github.com/twinhub/twinhub"
)

// Webhook deliveries are kept under 'y' (see the key layout in pebble.go):
//
//	'y' 0x00 id(8)             the delivery, JSON
//	'y' 0x01                   uvarint(cursor) uvarint(last ID): the output log position
//	                           deliveries were derived up to, and the last ID handed out
//	'y' 0x02 status(1) id(8)   status index; the value is the delivery's webhook name
//
// New deliveries and the cursor move in one batch, so that a crash between
// reading the output log and recording what it asks for neither loses a
// delivery nor records one twice. The status index lets the dispatcher
// resume pending deliveries and the API list dead ones without decoding the
// others, and count deliveries per webhook from keys and names alone.
const (
	dvMain   = 0x00
	dvState  = 0x01
	dvStatus = 0x02
)

var dvStateKey = []byte{'y', dvState}

func deliveryKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'y', dvMain}, id)
}

// statusCode is a status's byte in the index; unknown statuses have none.
func statusCode(st twinhub.DeliveryStatus) (byte, bool) {
	for i, s := range twinhub.DeliveryStatuses {
		if s == st {
			return byte(i), true
		}
	}
	return 0, false
}

func deliveryStatusKey(st twinhub.DeliveryStatus, id uint64) ([]byte, error) {
	c, ok := statusCode(st)
	if !ok {
		return nil, fmt.Errorf("delivery %d has unknown status %q", id, st)
	}
	return binary.BigEndian.AppendUint64([]byte{'y', dvStatus, c}, id), nil
}

// deliveryState reads the cursor and the last delivery ID.
func (s *DB) deliveryState() (cursor, last uint64, err error) {
	v, ok, err := s.get(dvStateKey)
	if err != nil || !ok {
		return 0, 0, err
	}
	cursor, n := binary.Uvarint(v)
	if n <= 0 {
		return 0, 0, fmt.Errorf("corrupt webhook cursor %x", v)
	}
	last, m := binary.Uvarint(v[n:])
	if m <= 0 {
		return 0, 0, fmt.Errorf("corrupt webhook cursor %x", v)
	}
	return cursor, last, nil
}

// DeliveryCursor returns the output log position up to which deliveries
// were derived: 0 when none were.
func (s *DB) DeliveryCursor() (uint64, error) {
	c, _, err := s.deliveryState()
	return c, err
}

// AddDeliveries gives ds their IDs, in order, and writes them with the
// cursor in one batch.
func (s *DB) AddDeliveries(cursor uint64, ds []twinhub.Delivery) error {
	s.dv.Lock()
	defer s.dv.Unlock()
	_, last, err := s.deliveryState()
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	for i := range ds {
		d := &ds[i]
		d.ID = last + 1 + uint64(i)
		if err := putDelivery(b, d); err != nil {
			return err
		}
	}
	last += uint64(len(ds))
	v := binary.AppendUvarint(nil, cursor)
	v = binary.AppendUvarint(v, last)
	if err := b.Set(dvStateKey, v, nil); err != nil {
		return err
	}
	if err := b.Commit(cpebble.NoSync); err != nil {
		for i := range ds {
			ds[i].ID = 0
		}
		return err
	}
	return nil
}

func putDelivery(b *cpebble.Batch, d *twinhub.Delivery) error {
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode delivery %d: %w", d.ID, err)
	}
	sk, err := deliveryStatusKey(d.Status, d.ID)
	if err != nil {
		return err
	}
	if err := b.Set(deliveryKey(d.ID), v, nil); err != nil {
		return err
	}
	return b.Set(sk, []byte(d.Webhook), nil)
}

// UpdateDelivery replaces delivery d.ID, which must exist, with d.
func (s *DB) UpdateDelivery(d twinhub.Delivery) error {
	s.dv.Lock()
	defer s.dv.Unlock()
	old, ok, err := s.Delivery(d.ID)
	if err != nil {
		return err
	}
	if !ok {
		return twinhub.Errorf(twinhub.ENOTFOUND, "no delivery with id %d", d.ID)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if old.Status != d.Status {
		if sk, err := deliveryStatusKey(old.Status, old.ID); err == nil {
			if err := b.Delete(sk, nil); err != nil {
				return err
			}
		}
	}
	if err := putDelivery(b, &d); err != nil {
		return err
	}
	return b.Commit(cpebble.NoSync)
}

// Delivery returns the delivery with id.
func (s *DB) Delivery(id uint64) (twinhub.Delivery, bool, error) {
	var d twinhub.Delivery
	v, ok, err := s.get(deliveryKey(id))
	if err != nil || !ok {
		return d, false, err
	}
	if err := json.Unmarshal(v, &d); err != nil {
		return d, false, fmt.Errorf("corrupt delivery %d: %w", id, err)
	}
	return d, true, nil
}

// Deliveries calls fn for the deliveries with ID > after, in ID order, until
// fn returns false; only those in status when it is not empty.
func (s *DB) Deliveries(status twinhub.DeliveryStatus, after uint64, fn func(twinhub.Delivery) bool) error {
	if status == "" {
		return s.scan(deliveryKey(after+1), dvStateKey, func(k, v []byte) (bool, error) {
			var d twinhub.Delivery
			if err := json.Unmarshal(v, &d); err != nil {
				return false, fmt.Errorf("corrupt delivery %x: %w", k, err)
			}
			return fn(d), nil
		})
	}
	lo, err := deliveryStatusKey(status, after+1)
	if err != nil {
		return twinhub.Errorf(twinhub.EINVALID, "unknown delivery status %q", status)
	}
	hi := prefixEnd(lo[:3])
	return s.scan(lo, hi, func(k, _ []byte) (bool, error) {
		d, err := s.indexed(k, status)
		if err != nil {
			return false, err
		}
		return fn(d), nil
	})
}

// PruneDeliveries deletes the deliveries that were delivered before
// before, and returns how many. Pending deliveries stay, and so do dead
// ones: they are the list of what to retry.
func (s *DB) PruneDeliveries(before time.Time) (int, error) {
	code, _ := statusCode(twinhub.DeliveryDelivered)
	prefix := []byte{'y', dvStatus, code}
	n := 0
	for from := prefix; from != nil; {
		// A chunk at a time, holding up the dispatcher's writes briefly.
		var err error
		if from, err = s.pruneSome(from, prefixEnd(prefix), before, &n); err != nil {
			return n, err
		}
	}
	return n, nil
}

// pruneSome prunes delivered deliveries in [from, to) up to a chunk, and
// returns where the next chunk starts, nil when there is none.
func (s *DB) pruneSome(from, to []byte, before time.Time, n *int) ([]byte, error) {
	s.dv.Lock()
	defer s.dv.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	seen := 0
	var next []byte
	err := s.scan(from, to, func(k, _ []byte) (bool, error) {
		if seen == 1024 {
			next = bytes.Clone(k)
			return false, nil
		}
		seen++
		d, err := s.indexed(k, twinhub.DeliveryDelivered)
		if err != nil {
			return false, err
		}
		if !d.Delivered.Before(before) {
			return true, nil // delivered later than before: kept (IDs follow creation, not delivery)
		}
		*n++
		if err := b.Delete(k, nil); err != nil {
			return false, err
		}
		return true, b.Delete(deliveryKey(d.ID), nil)
	})
	if err != nil || b.Empty() {
		return next, err
	}
	return next, b.Commit(cpebble.NoSync)
}

// indexed returns the delivery that status index key k names, checking
// that it is in status.
func (s *DB) indexed(k []byte, status twinhub.DeliveryStatus) (twinhub.Delivery, error) {
	if len(k) != 11 {
		return twinhub.Delivery{}, fmt.Errorf("corrupt delivery index key %x", k)
	}
	id := binary.BigEndian.Uint64(k[3:])
	d, ok, err := s.Delivery(id)
	if err != nil {
		return d, err
	}
	if !ok || d.Status != status {
		return d, fmt.Errorf("delivery index entry %x does not match delivery %d", k, id)
	}
	return d, nil
}

// DeliveryCounts counts deliveries by webhook and status.
func (s *DB) DeliveryCounts() (map[string]map[twinhub.DeliveryStatus]int64, error) {
	counts := map[string]map[twinhub.DeliveryStatus]int64{}
	err := s.scan([]byte{'y', dvStatus}, []byte{'y', dvStatus + 1}, func(k, v []byte) (bool, error) {
		if len(k) != 11 || int(k[2]) >= len(twinhub.DeliveryStatuses) {
			return false, fmt.Errorf("corrupt delivery index key %x", k)
		}
		m := counts[string(v)]
		if m == nil {
			m = map[twinhub.DeliveryStatus]int64{}
			counts[string(v)] = m
		}
		m[twinhub.DeliveryStatuses[k[2]]]++
		return true, nil
	})
	return counts, err
}
