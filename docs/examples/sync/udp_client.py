import socket
import sys

# Get the host and port from the command line arguments.
host = sys.argv[1]
port = int(sys.argv[2])

# Create a UDP socket.
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

# Send the message to the server.
message = "Hello, world!"
sock.sendto(bytes(message, "utf-8"), (host, port))

# Receive the response from the server.
data, address = sock.recvfrom(1024)

# Print the response.
print("Received:", data.decode("utf-8"))
