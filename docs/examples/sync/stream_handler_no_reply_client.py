import os  # added for the tests
import socket

# Create a TCP client
client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

# Connect to the server
client.connect(('localhost', int(os.environ.get("EXAMPLE_PORT", "8888"))))  # port from the environment

# Send a message
message = "Hello world with TCP".encode()
client.send(message)

# Receive a message
response = client.recv(1024)
print(f"Received: {response.decode()}")

# Close the client
client.close()
